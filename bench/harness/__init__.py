"""The benchmark harness behind ``bench/run.py``.

One run measures every system on the same machine, one after the other, against the same mock upstream:

    load generator ──► system under test ──► mock upstream (nginx returning fixed OpenAI bodies)

- ``bodies``        the request the clients send and the JSON / SSE answers the mock returns
- ``nginx``         config and process for the mock upstream and for the reference C proxy
- ``systems``       how each system under test starts (floor, nginx proxy, gateway, LiteLLM proxy)
- ``litellm_env``   LiteLLM in its own virtual environment; ``redis_server`` the gateway's Redis
- ``procs``         process trees: CPU time, RSS, CPU pinning, start and stop
- ``machine``       the machine, the versions, which cores the system and the load side get
- ``wrk``           saturated throughput with wrk (closed loop, many connections)
- ``openloop``      fixed-rate open-loop latency and time to first token (its own process)
- ``phases``        the measurements of one system, in order
- ``paced``         the paced-stream phase and the open-streams check: ``paced_upstream`` (streams at a
  model's pace, each token stamped when written), ``paced_client`` (N open streams, each token timed on
  arrival), ``paced_report`` (their figures and tables); ``tcp_pipe`` the Python reference relay
- ``report``        derived figures (ratios, added latency, targets) and tables;
  ``document`` the terminal output and RESULTS.md; ``chart`` the PNG

Every figure is also given as a ratio to a baseline measured in the same run (the floor, LiteLLM),
because on a small shared machine absolute numbers move between runs while ratios hold better.
"""
