"""How a new version reaches traffic, and the API's lasting address.

- Every function publishes a version on each deploy under the alias `live` (SAM's
  AutoPublishAlias; AutoPublishAliasAllProperties, so a change of configuration alone publishes
  one too), and everything invokes the alias: the API's integrations (scripts/package.py
  rewrites them), the schedules and the queue consumers (SAM points their events at the alias).
- CodeDeploy moves the alias to the new version as the DeploymentType parameter says (by
  default 10 % for 5 minutes, then all) and rolls back when one of the function's alarms fires
  meanwhile: its Errors, the API's 5xx and webhook latency, a consumer's queue age.
- An optional custom domain (ApiDomainName + ApiCertificateArn, an ACM certificate in us-east-1:
  the API is edge-optimized) maps to the API's stage, so the amoCRM redirect URI and webhook URL
  survive an API that is created anew. Output ApiURL is the address to give amoCRM.
"""

from __future__ import annotations

from scripts.infra_spec import FUNCTIONS

ALIAS = "live"
DEPLOYMENT_TYPES = [
    "Canary10Percent5Minutes",
    "Canary10Percent10Minutes",
    "Linear10PercentEvery1Minute",
    "Linear10PercentEvery2Minutes",
    "AllAtOnce",
]


def rollback_alarms(function_id: str) -> list[str]:
    """The alarms whose firing during a rollout sends the function back to its previous version."""
    alarms = [f"{function_id}ErrorsAlarm"]
    if function_id == "APIHandler":
        alarms += ["Api5xxAlarm", "WebhookLatencyAlarm"]
    consumed = FUNCTIONS[function_id].consumes
    if consumed:
        alarms.append(f"{consumed}AgeAlarm")
    return alarms


def function_properties(function_id: str) -> dict:
    return {
        "AutoPublishAlias": ALIAS,
        "AutoPublishAliasAllProperties": True,
        "DeploymentPreference": {
            "Type": {"Ref": "DeploymentType"},
            "Alarms": [{"Ref": alarm} for alarm in rollback_alarms(function_id)],
        },
    }


def parameters() -> dict[str, dict]:
    return {
        "DeploymentType": {
            "Type": "String",
            "Default": DEPLOYMENT_TYPES[0],
            "AllowedValues": DEPLOYMENT_TYPES,
            "Description": "how CodeDeploy moves each function's alias to a new version (rolled back on its alarms)",
        },
        "ApiDomainName": {
            "Type": "String",
            "Default": "",
            "Description": "the API's custom domain, e.g. amocrm.example.com (empty: the execute-api address only)",
        },
        "ApiCertificateArn": {
            # no default: cfn-lint checks a default against the ARN pattern; make deploy always gives one
            "Type": "String",
            "Description": "ACM certificate of ApiDomainName, in us-east-1 (the API is edge-optimized); empty without",
        },
    }


def conditions() -> dict[str, dict]:
    return {"HasApiDomain": {"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiDomainName"}, ""]}]}}


def resources() -> dict[str, dict]:
    return {
        # the API invokes the alias: the permission is the alias's (its integrations: scripts/package.py)
        "APIHandlerInvokePermission": {"Properties": {"FunctionName": {"Ref": "APIHandler.Alias"}}},
        "ApiDomain": {
            "Type": "AWS::ApiGateway::DomainName",
            "Condition": "HasApiDomain",
            "Properties": {
                "DomainName": {"Ref": "ApiDomainName"},
                "CertificateArn": {"Ref": "ApiCertificateArn"},
                "EndpointConfiguration": {"Types": ["EDGE"]},
                "SecurityPolicy": "TLS_1_2",
            },
        },
        "ApiDomainMapping": {
            "Type": "AWS::ApiGateway::BasePathMapping",
            "Condition": "HasApiDomain",
            "Properties": {
                "DomainName": {"Ref": "ApiDomain"},
                "RestApiId": {"Ref": "RestAPI"},
                "Stage": {"Ref": "RestAPI.Stage"},
            },
        },
    }


def outputs() -> dict[str, dict]:
    return {
        "ApiURL": {
            "Description": "the API's base URL to give amoCRM (redirect URI, webhooks): the custom domain's when set",
            "Value": {
                "Fn::If": [
                    "HasApiDomain",
                    {"Fn::Sub": "https://${ApiDomainName}/"},
                    {"Fn::Sub": "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api/"},
                ]
            },
        },
        "ApiDomainTarget": {
            "Description": "where the custom domain's DNS record (CNAME or alias) points",
            "Condition": "HasApiDomain",
            "Value": {"Fn::GetAtt": ["ApiDomain", "DistributionDomainName"]},
        },
    }
