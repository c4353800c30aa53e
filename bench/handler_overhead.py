"""Per-file overhead of the handler on small files, against bare GET + PUT on the same endpoint.

S3 (and DynamoDB) are a moto server in another process. Batches of 10 one-message-per-file events.

    python -m bench.handler_overhead [--files 300]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from typing import Any

from bench.handler_common import (
    BUCKET,
    ROOT,
    create_resources,
    machine,
    moto_server,
    s3_body,
    settings_env,
    sqs_event,
    use_bench_env,
)

SMALL = json.dumps([{"id": n, "name": f"item-{n}", "price": n * 1.5} for n in range(10)]).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=300)
    args = parser.parse_args()
    use_bench_env()
    sys.path.insert(0, str(ROOT))
    app: Any = importlib.import_module("handler.app")
    clients_module: Any = importlib.import_module("handler.clients")
    settings_module: Any = importlib.import_module("handler.settings")
    print(machine())
    print(f"{len(SMALL)}-byte JSON files, {args.files} per case")
    with moto_server() as endpoint:
        dlq_url = create_resources(endpoint)
        clients = clients_module.Clients.create(endpoint_url=endpoint)
        s3 = clients.s3
        puts = []
        for n in range(args.files):
            key = f"in/small/{n:05d}.json"
            puts.append((key, s3.put_object(Bucket=BUCKET, Key=key, Body=SMALL)))

        # Bare: what any handler must do at least, GET the object and PUT a result.
        s3.get_object(Bucket=BUCKET, Key=puts[0][0])["Body"].read()
        started = time.perf_counter()
        for key, _ in puts:
            body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            s3.put_object(Bucket=BUCKET, Key="bare/" + key, Body=body)
        bare = (time.perf_counter() - started) / args.files

        results = {"bare GET + PUT": bare}
        for label, state in (("handler, no state table", False), ("handler, with state table", True)):
            os.environ.update(settings_env(dlq_url))
            if not state:
                os.environ.pop("FILEPIPE_STATE_TABLE", None)
            settings = settings_module.HandlerSettings.from_env()
            prefix = "out-state/" if state else "out-plain/"
            handler = app.build_handler(
                settings.__class__(**{**_fields(settings), "output_prefix": prefix}), clients
            )
            events = [
                sqs_event([s3_body(key, put, len(SMALL)) for key, put in puts[i : i + 10]])
                for i in range(0, len(puts), 10)
            ]
            started = time.perf_counter()
            for event in events:
                response = handler(event, None)
                assert response == {"batchItemFailures": []}, response
            results[label] = (time.perf_counter() - started) / args.files

    print(f"{'case':28} {'ms/file':>8} {'x bare':>7} {'overhead ms':>12}")
    for label, seconds in results.items():
        print(f"{label:28} {seconds * 1000:8.2f} {seconds / bare:7.2f} {(seconds - bare) * 1000:12.2f}")


def _fields(settings: Any) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


if __name__ == "__main__":
    main()
