"""A naive S3 -> SQS -> Lambda handler (the usual tutorial shape), the baseline of ``bench/throughput.py``.

Per S3 record of each SQS message: read the whole object, ``json.loads`` it, wrap the records in the
output envelope (``source_file``, ``processed_at``, ``record_count``, ``data``), ``json.dumps`` the
envelope and put it under the output prefix. No streaming, no state, no validation: memory grows with the
file (the parsed records and the encoded output are both held whole).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus


def make_handler(s3: Any, input_prefix: str, output_prefix: str) -> Any:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failures = []
        for message in event["Records"]:
            try:
                body = json.loads(message["body"])
                for record in body.get("Records", []):
                    bucket = record["s3"]["bucket"]["name"]
                    key = unquote_plus(record["s3"]["object"]["key"])
                    content = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                    data = json.loads(content)
                    records = data if isinstance(data, list) else [data]
                    envelope = {
                        "source_file": f"s3://{bucket}/{key}",
                        "processed_at": datetime.now(UTC).isoformat(),
                        "record_count": len(records),
                        "data": records,
                    }
                    out_key = output_prefix + key[len(input_prefix) :]
                    s3.put_object(Bucket=bucket, Key=out_key, Body=json.dumps(envelope).encode())
            except Exception:
                failures.append({"itemIdentifier": message["messageId"]})
        return {"batchItemFailures": failures}

    return handler
