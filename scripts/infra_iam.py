"""One IAM policy per function (.chalice/policy-<function>.json, one role each), every ARN one of
the stack's own resources (`Fn::GetAtt`) or scoped to the stack's region and account, so two
stages in one account never reach each other's tables, queues or secrets. Each function may use
only the tables, and the DynamoDB actions, its own code uses (scripts/infra_access.py).

Chalice copies these documents into the packaged template as they are, so CloudFormation
resolves the intrinsics; deploy the package (`make deploy`), not with `chalice deploy`.
"""

from __future__ import annotations

from scripts.infra_spec import FUNCTIONS, Function

# every DynamoDB action the code may send, in the order the policies list them
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


def policy(function_id: str, function: Function, *, tables: list[str], actions: list[str], indexed: list[str]) -> dict:
    """`tables`: logical ids of the tables it uses; `actions`: the DynamoDB actions it sends;
    `indexed`: which tables have indexes (a Query on an index names the index's ARN)."""
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
    ]
    if tables:
        indexes = [t for t in tables if t in indexed] if {"dynamodb:Query", "dynamodb:Scan"} & set(actions) else []
        statements.append(
            {
                "Sid": "OwnTables",
                "Effect": "Allow",
                "Action": [a for a in TABLE_ACTIONS if a in actions],
                "Resource": [arn(t) for t in tables] + [{"Fn::Sub": f"${{{t}.Arn}}/index/*"} for t in indexes],
            }
        )
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


def policies(uses: dict[str, tuple[list[str], list[str]]], indexed: list[str]) -> dict[str, dict]:
    """File name under .chalice/ -> policy document. `uses`: function id -> (tables, actions)."""
    unknown = {action for _, actions in uses.values() for action in actions} - set(TABLE_ACTIONS)
    if unknown:
        raise ValueError(f"DynamoDB actions not in TABLE_ACTIONS: {sorted(unknown)}")
    return {
        f.policy_file: policy(fid, f, tables=uses[fid][0], actions=uses[fid][1], indexed=indexed)
        for fid, f in FUNCTIONS.items()
    }
