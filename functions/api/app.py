"""Management API: register, update and remove dependents; list bases, rebuilds and the graph;
promote a rebuild or roll an image back by hand. The routes are in `patchprop.api`, by area.

AWS_IAM-authorized in AWS (API Gateway checks the SigV4 signature before this runs).
"""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchprop.api import by_hand, dependents, fleet
from patchprop.web import answer_errors, refuse_unknown_input

# Response bodies at DEBUG would repeat every registration in the logs; keep them above it.
for _noisy in ("botocore", "aws_lambda_powertools.event_handler"):
    logging.getLogger(_noisy).setLevel(logging.INFO)

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = answer_errors(APIGatewayRestResolver(enable_validation=True))
app.use(middlewares=[refuse_unknown_input])  # a typo'd query parameter is a 400, never ignored
for _area in (dependents, fleet, by_hand):
    app.include_router(_area.router)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
