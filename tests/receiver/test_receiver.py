import time

import httpx

from pipeline.models import new_secret
from pipeline.receiver import Receiver
from pipeline.signing import webhook_headers


def test_records_deliveries_and_checks_signatures() -> None:
    secret = new_secret()
    receiver = Receiver(secret=secret)
    base_url = receiver.start()
    try:
        good = webhook_headers([secret], "msg_1", int(time.time()), b'{"a":1}')
        bad = webhook_headers([new_secret()], "msg_2", int(time.time()), b'{"a":1}')
        assert httpx.post(f"{base_url}/hooks/a", content=b'{"a":1}', headers=good).status_code == 204
        assert httpx.post(f"{base_url}/hooks/b", content=b'{"a":1}', headers=bad).status_code == 204
        assert [d.signature_ok for d in receiver.by_path("/hooks/a")] == [True]
        assert [d.signature_ok for d in receiver.by_path("/hooks/b")] == [False]
        assert httpx.get(f"{base_url}/_count").json() == {"count": 2}
        received = httpx.get(f"{base_url}/_received").json()
        assert [r["headers"]["webhook-id"] for r in received] == ["msg_1", "msg_2"]
    finally:
        receiver.stop()
