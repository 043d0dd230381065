"""Every Chalice decorator of the service and nothing else: each handler parses its input,
calls one service function and shapes the response (STYLE.md)."""
from chalice import Chalice, Rate, Response

from chalicelib import logs, validation, web
from chalicelib.services import tokens

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


# -- schedules -----------------------------------------------------------------------------------

@app.schedule(Rate(12, unit=Rate.HOURS), name="refresh-token")
def scheduled_token_refresh(event):
    """Keeps the ~3-month refresh token alive even when nothing else calls amoCRM."""
    return tokens.keep_alive()
