"""One IAM policy per function (.chalice/policy-<function>.json, one role each), every ARN one of
the stack's own resources (`Fn::GetAtt`) or scoped to the stack's region and account, so two
stages in one account never reach each other's tables, queues or secrets.

Chalice copies these documents into the packaged template as they are, so CloudFormation
resolves the intrinsics; deploy the package (`make deploy`), not with `chalice deploy`.
"""

from __future__ import annotations

from scripts.infra_spec import FUNCTIONS, Function

TABLE_ACTIONS = [
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DescribeTable",
]
CONSUME_ACTIONS = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
DEAD_LETTER_ACTIONS = ["sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:DeleteMessage"]


def arn(logical_id: str) -> dict:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def _secret_arn(secret: str) -> dict:
    # Secrets Manager appends "-" and six random characters to every secret's ARN
    return {
        "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
        "${SecretsPrefix}" + secret + "-??????"
    }


def policy(function_id: str, function: Function, tables: list[str], indexed: list[str]) -> dict:
    statements: list[dict] = [
        {
            "Sid": "OwnLogGroup",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": arn(f"{function_id}LogGroup"),
        },
        {
            "Sid": "Tracing",
            "Effect": "Allow",
            "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
            "Resource": "*",
        },
        {
            "Sid": "OwnTables",
            "Effect": "Allow",
            "Action": TABLE_ACTIONS,
            "Resource": [arn(t) for t in tables] + [{"Fn::Sub": f"${{{t}.Arn}}/index/*"} for t in indexed],
        },
    ]
    if function.sends:
        statements.append(
            {
                "Sid": "SendTo",
                "Effect": "Allow",
                "Action": ["sqs:SendMessage"],
                "Resource": [arn(q) for q in function.sends],
            }
        )
    if function.consumes:
        statements.append(
            {"Sid": "Consume", "Effect": "Allow", "Action": CONSUME_ACTIONS, "Resource": arn(function.consumes)}
        )
    if function.reads_dead_letters:
        statements.append(
            {
                "Sid": "NotificationDeadLetters",
                "Effect": "Allow",
                "Action": DEAD_LETTER_ACTIONS,
                "Resource": arn("NotifyQueueDLQ"),
            }
        )
    if function.secrets:
        statements.append(
            {
                "Sid": "Secrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": [_secret_arn(s) for s in function.secrets],
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def policies(tables: list[str], indexed: list[str]) -> dict[str, dict]:
    """File name under .chalice/ -> policy document."""
    return {f.policy_file: policy(fid, f, tables, indexed) for fid, f in FUNCTIONS.items()}
