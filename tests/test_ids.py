from gateway.core.ids import new_id


def test_ids_are_unique_and_uuid_shaped() -> None:
    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
