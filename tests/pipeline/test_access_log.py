import io
import json

from gateway.pipeline.access_log import AccessLog


class _Text(io.StringIO):
    """A text stream without a binary buffer, like a StringIO."""


def test_lines_are_json_and_none_is_lost_on_stop() -> None:
    sink = _Text()
    log = AccessLog(stream=sink)
    log.start()
    for i in range(5000):
        log.write({"request_id": str(i), "outcome": "ok"})
    log.stop()
    lines = sink.getvalue().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == [str(i) for i in range(5000)]


def test_disabled_log_writes_nothing() -> None:
    sink = _Text()
    log = AccessLog(enabled=False, stream=sink)
    log.start()
    log.write({"x": 1})
    log.stop()
    assert sink.getvalue() == ""
