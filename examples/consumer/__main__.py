"""One pipeline: NDJSON orders in, normalised JSON out, each order checked against its schema."""

import pulumi

from filepipe import FileProcessingPipeline, PipelineArgs

orders = FileProcessingPipeline(
    "orders",
    PipelineArgs(
        input_prefix="incoming/orders/",
        input_format="ndjson",
        output_format="json",
        schema="schemas/order.schema.json",
        processor="transforms:normalise",
        processor_code_dir="src",
        alert_emails=["orders-team@example.com"],
        # The layer with the handler's packages is built by pip for a deploy; the local twin (and the
        # `local_stack` fixture) sets `filepipe:bundleDependencies` to false, as it runs the installed
        # handler.
        bundle_dependencies=pulumi.Config("filepipe").get_bool("bundleDependencies") is not False,
    ),
)
pulumi.export("orders", orders.outputs)
