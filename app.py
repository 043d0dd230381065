"""Every Chalice decorator of the service and nothing else: each handler parses its input,
calls one service function and shapes the response (STYLE.md)."""
from chalice import Chalice, Rate, Response

from chalicelib import logs, validation, web
from chalicelib.services import pipelines, tokens, users

app = Chalice(app_name="amocrm-integration")
app.debug = False
logs.configure()

P = web.API_PREFIX


@app.middleware("http")
def guard_and_tag(event, get_response):
    logs.correlation_id.set(event.context.get("requestId") or "-")
    return web.guard(event.context.get("resourcePath", ""), event.headers) or get_response(event)


# -- OAuth and connection ------------------------------------------------------------------------

@app.route(f"{P}/callback", methods=["GET"])
@web.maps_errors
def callback():
    params = web.query(app.current_request)
    code = validation.string(params, "code")
    result = tokens.exchange_code(code, state=params.get("state"), referer=params.get("referer"))
    return web.confirmation_page(app.current_request, result)


@app.route(f"{P}/exchange-api-key", methods=["POST"])
@web.maps_errors
def exchange_api_key():
    body = validation.body_object(app.current_request.json_body)
    result = tokens.exchange_api_key_for_code(validation.string(body, "login", max_length=320),
                                              validation.string(body, "api_key", max_length=200),
                                              validation.string(body, "state", required=False, max_length=200))
    return Response(body=result, status_code=202)


@app.route(f"{P}/test", methods=["GET"])
@web.maps_errors
def test_connection():
    return tokens.get_connection_status()


@app.route(f"{P}/set-tokens", methods=["POST"])
@web.maps_errors
def set_tokens():
    body = validation.body_object(app.current_request.json_body)
    return tokens.set_tokens(validation.string(body, "access_token", max_length=8000),
                             validation.string(body, "refresh_token", max_length=8000),
                             validation.integer(body, "expires_in", required=False, minimum=1, default=86400))


# -- pipelines, stages and status mapping ---------------------------------------------------------

@app.route(f"{P}/sync-pipelines", methods=["POST"])
@web.maps_errors
def sync_pipelines():
    return pipelines.sync_pipelines()


@app.route(f"{P}/pipelines", methods=["GET"])
@web.maps_errors
def list_pipelines():
    return pipelines.get_pipelines(*validation.page_params(app.current_request.query_params))


@app.route(f"{P}/pipelines/{{pipelineId}}/stages", methods=["GET"])
@web.maps_errors
def list_stages(pipelineId):
    return pipelines.get_stages(validation.path_int(pipelineId, "pipelineId"),
                                *validation.page_params(app.current_request.query_params))


@app.route(f"{P}/stages/{{stageId}}/mapping", methods=["PUT"])
@web.maps_errors
def map_stage(stageId):
    body = validation.body_object(app.current_request.json_body)
    return pipelines.update_stage_mapping(validation.path_int(stageId, "stageId"), body.get("mappedStatus"),
                                          validation.integer(body, "pipelineId", required=False, minimum=1))


@app.route(f"{P}/mapping/suggestions", methods=["GET"])
@web.maps_errors
def mapping_suggestions():
    return pipelines.get_suggested_mappings()


@app.route(f"{P}/mapping/auto-apply", methods=["POST"])
@web.maps_errors
def mapping_auto_apply():
    body = validation.body_object(web.optional_json(app.current_request))
    options = {**web.query(app.current_request), **body}
    return pipelines.apply_auto_mapping(
        validation.fraction(options, "minConfidence", pipelines.DEFAULT_AUTO_APPLY_CONFIDENCE))


# -- users and roles -----------------------------------------------------------------------------

@app.route(f"{P}/sync-users", methods=["POST"])
@web.maps_errors
def sync_users():
    return users.sync_users()


@app.route(f"{P}/users", methods=["GET"])
@web.maps_errors
def list_users():
    return users.get_users(*validation.page_params(app.current_request.query_params))


@app.route(f"{P}/sync-roles", methods=["POST"])
@web.maps_errors
def sync_roles():
    return users.sync_roles()


@app.route(f"{P}/roles", methods=["GET"])
@web.maps_errors
def list_roles():
    return users.get_roles(*validation.page_params(app.current_request.query_params))


# -- schedules -----------------------------------------------------------------------------------

@app.schedule(Rate(12, unit=Rate.HOURS), name="refresh-token")
def scheduled_token_refresh(event):
    """Keeps the ~3-month refresh token alive even when nothing else calls amoCRM."""
    return tokens.keep_alive()
