"""Every Chalice decorator of the service and nothing else: each handler parses its input,
calls one service function and shapes the response (STYLE.md)."""

from chalice import Chalice, Rate, Response

from chalicelib import invocation, logs, settings, validation, web, wiring
from chalicelib.once import once
from chalicelib.services import (
    activity,
    connection,
    contacts,
    erasure,
    leads,
    notifications,
    pipelines,
    queue_batch,
    retention,
    sync,
    tasks,
    token_expiry,
    users,
    webhook_events,
    webhooks,
)

app = Chalice(app_name="amocrm-integration", configure_logs=False)  # app.log propagates to logs' JSON handler
app.debug = False
logs.configure()

P = web.API_PREFIX


@app.middleware("all")
def observe(event, get_response):
    """Correlation id, cold start, one JSON line for an unhandled error, metrics: every handler."""
    return invocation.around(event, get_response)


@app.middleware("http")
def guard(event, get_response):
    return web.guard(event.context.get("resourcePath", ""), event.headers) or get_response(event)


# -- OAuth and connection ------------------------------------------------------------------------


@app.route(f"{P}/callback", methods=["GET"])
@web.maps_errors
def callback():
    params = web.query(web.request(app))
    code, state, referer = validation.callback_params(params)
    result = connection.exchange_code(wiring.amo(), code=code, state=state, referer=referer)
    return web.confirmation_page(web.request(app), result)


@app.route(f"{P}/connect", methods=["GET"])
@web.maps_errors
def connect():
    return connection.consent_url()


@app.route(f"{P}/exchange-api-key", methods=["POST"])
@web.maps_errors
def exchange_api_key():
    body = validation.body_object(web.request(app).json_body)
    result = connection.exchange_api_key_for_code(
        wiring.amo(),
        login=validation.string(body, field="login", max_length=320),
        api_key=validation.string(body, field="api_key", max_length=200),
        state=validation.string(body, field="state", required=False, max_length=200),
    )
    return Response(body=result, status_code=202)


@app.route(f"{P}/test", methods=["GET"])
@web.maps_errors
def test_connection():
    return connection.get_connection_status(wiring.amo())


@app.route(f"{P}/set-tokens", methods=["POST"])
@web.maps_errors
def set_tokens():
    body = validation.body_object(web.request(app).json_body)
    return connection.set_tokens(
        wiring.amo(),
        access_token=validation.string(body, field="access_token", max_length=8000),
        refresh_token_value=validation.string(body, field="refresh_token", max_length=8000),
        expires_in=validation.integer(body, field="expires_in", required=False, minimum=1, default=86400),
    )


# -- pipelines, stages and status mapping ---------------------------------------------------------


@app.route(f"{P}/sync-pipelines", methods=["POST"])
@web.maps_errors
def sync_pipelines():
    return pipelines.sync_pipelines(wiring.amo())


@app.route(f"{P}/pipelines", methods=["GET"])
@web.maps_errors
def list_pipelines():
    return pipelines.get_pipelines(*validation.page_params(web.request(app).query_params))


@app.route(f"{P}/pipelines/{{pipelineId}}/stages", methods=["GET"])
@web.maps_errors
def list_stages(pipelineId):
    return pipelines.get_stages(
        validation.path_int(pipelineId, "pipelineId"), *validation.page_params(web.request(app).query_params)
    )


@app.route(f"{P}/stages/{{stageId}}/mapping", methods=["PUT"])
@web.maps_errors
def map_stage(stageId):
    body = validation.body_object(web.request(app).json_body)
    return pipelines.update_stage_mapping(
        validation.path_int(stageId, "stageId"),
        body.get("mappedStatus"),
        validation.integer(body, field="pipelineId", required=False, minimum=1),
    )


@app.route(f"{P}/mapping/suggestions", methods=["GET"])
@web.maps_errors
def mapping_suggestions():
    return pipelines.get_suggested_mappings()


@app.route(f"{P}/mapping/status", methods=["GET"])
@web.maps_errors
def mapping_status():
    return pipelines.mapping_status()


@app.route(f"{P}/mapping/auto-apply", methods=["POST"])
@web.maps_errors
def mapping_auto_apply():
    body = validation.body_object(web.optional_json(web.request(app)))
    options = {**web.query(web.request(app)), **body}
    return pipelines.apply_auto_mapping(
        validation.fraction(options, "minConfidence", pipelines.DEFAULT_AUTO_APPLY_CONFIDENCE)
    )


# -- users and roles -----------------------------------------------------------------------------


@app.route(f"{P}/sync-users", methods=["POST"])
@web.maps_errors
def sync_users():
    return users.sync_users(wiring.amo())


@app.route(f"{P}/users", methods=["GET"])
@web.maps_errors
def list_users():
    return users.get_users(*validation.page_params(web.request(app).query_params))


@app.route(f"{P}/sync-roles", methods=["POST"])
@web.maps_errors
def sync_roles():
    return users.sync_roles(wiring.amo())


@app.route(f"{P}/roles", methods=["GET"])
@web.maps_errors
def list_roles():
    return users.get_roles(*validation.page_params(web.request(app).query_params))


# -- leads ---------------------------------------------------------------------------------------


@app.route(f"{P}/sync-leads", methods=["POST"])
@web.maps_errors
def sync_leads():
    limit = validation.query_int(web.request(app).query_params, name="limit", default=50)
    return sync.sync_leads_from_amo(wiring.amo(), limit=limit, time_left=web.time_left_for_route(app))


@app.route(f"{P}/create-lead", methods=["POST"])
@web.maps_errors
def create_lead():
    body = validation.body_object(web.request(app).json_body)
    lead_data = validation.lead_data(body.get("leadData"))
    contact = validation.contact_data(body["contact"]) if body.get("contact") is not None else None
    return once(
        app,
        scope="create-lead",
        body=body,
        work=lambda checkpoint: leads.create_lead(
            wiring.amo(), lead_data=lead_data, contact=contact, checkpoint=checkpoint
        ),
    )


@app.route(f"{P}/update-lead", methods=["POST"])
@web.maps_errors
def update_lead():
    body = validation.body_object(web.request(app).json_body)
    amo_lead_id = validation.integer(body, field="leadId", minimum=1)
    return leads.update_lead(wiring.amo(), amo_lead_id, validation.lead_data(body.get("leadData")))


@app.route(f"{P}/sync-lead", methods=["POST"])
@web.maps_errors
def sync_lead():
    body = validation.body_object(web.request(app).json_body)
    return leads.sync_lead(wiring.amo(), validation.body_object(body.get("lead"), "lead"))


@app.route(f"{P}/test-lead", methods=["POST"])
@web.maps_errors
def test_lead():
    return leads.create_test_lead(wiring.amo())


@app.route(f"{P}/leads/{{amoLeadId}}", methods=["GET"])
@web.maps_errors
def get_lead(amoLeadId):
    return leads.get_lead(validation.path_int(amoLeadId, "amoLeadId"))


@app.route(f"{P}/leads/{{amoLeadId}}/notes", methods=["POST"])
@web.maps_errors
def add_lead_note(amoLeadId):
    body = validation.body_object(web.request(app).json_body)
    lead_id = validation.path_int(amoLeadId, "amoLeadId")
    text = validation.string(body, field="text", max_length=20000)
    return once(
        app,
        scope="add-note",
        body=[lead_id, text],
        work=lambda checkpoint: leads.add_note(wiring.amo(), amo_lead_id=lead_id, text=text, checkpoint=checkpoint),
    )


# -- contacts and tasks --------------------------------------------------------------------------


@app.route(f"{P}/sync-contacts", methods=["POST"])
@web.maps_errors
def sync_contacts():
    limit = validation.query_int(web.request(app).query_params, name="limit", default=50)
    return sync.sync_contacts(wiring.amo(), limit=limit, time_left=web.time_left_for_route(app))


@app.route(f"{P}/contacts", methods=["GET"])
@web.maps_errors
def list_contacts():
    return contacts.get_contacts(*validation.page_params(web.request(app).query_params))


@app.route(f"{P}/contacts", methods=["POST"])
@web.maps_errors
def create_contact():
    data = validation.contact_data(web.request(app).json_body, "request body")
    return once(
        app,
        scope="create-contact",
        body=data,
        work=lambda checkpoint: contacts.create_contact(wiring.amo(), data, checkpoint),
    )


@app.route(f"{P}/guests/erase", methods=["POST"])
@web.maps_errors
def erase_guest():
    """A guest who asked to be forgotten: erased from every table (docs/personal-data.md)."""
    return erasure.erase_guest(wiring.amo, **validation.guest_to_erase(web.request(app).json_body))


@app.route(f"{P}/contacts/{{contactId}}", methods=["PATCH"])
@web.maps_errors
def update_contact(contactId):
    data = validation.contact_data(web.request(app).json_body, "request body", require_name=False)
    return contacts.update_contact(wiring.amo(), validation.path_int(contactId, "contactId"), data)


@app.route(f"{P}/sync-tasks", methods=["POST"])
@web.maps_errors
def sync_tasks():
    params = web.request(app).query_params
    return sync.sync_tasks(
        wiring.amo(),
        limit=validation.query_int(params, name="limit", default=50),
        is_completed=validation.query_bool(params, "is_completed"),
        entity_type=validation.entity_type_param(params),
        time_left=web.time_left_for_route(app),
    )


@app.route(f"{P}/tasks", methods=["GET"])
@web.maps_errors
def list_tasks():
    params = web.request(app).query_params
    limit, cursor = validation.page_params(params)
    is_completed, entity_type, entity_id = validation.task_filters(params)
    return tasks.get_tasks(
        limit, cursor=cursor, is_completed=is_completed, entity_type=entity_type, entity_id=entity_id
    )


@app.route(f"{P}/tasks", methods=["POST"])
@web.maps_errors
def create_task():
    data = validation.task_data(web.request(app).json_body)
    return tasks.with_data(
        once(
            app,
            scope="create-task",
            body=data,
            work=lambda checkpoint: tasks.create_task(wiring.amo(), data, checkpoint),
        )
    )


@app.route(f"{P}/tasks/{{taskId}}/complete", methods=["PATCH"])
@web.maps_errors
def complete_task(taskId):
    body = validation.body_object(web.optional_json(web.request(app)))
    return tasks.complete_task(
        wiring.amo(),
        validation.path_int(taskId, "taskId"),
        validation.string(body, field="result_text", required=False, max_length=5000),
    )


# -- full and incremental sync -------------------------------------------------------------------


@app.route(f"{P}/sync-all", methods=["POST"])
@web.maps_errors
def sync_all():
    params = web.request(app).query_params
    return sync.sync_all(
        wiring.amo(),
        leads_limit=validation.query_int(params, name="leadsLimit", default=0),
        full=validation.query_bool(params, "full") is not False,
        time_left=web.time_left_for_route(app),
    )


@app.route(f"{P}/sync-jobs/{{jobId}}", methods=["GET"])
@web.maps_errors
def sync_job(jobId):
    return sync.get_job(validation.string({"jobId": jobId}, field="jobId", max_length=64))


@app.on_sqs_message(queue=settings.sync_queue_name(), batch_size=1, name="continue-sync", maximum_concurrency=2)
def continue_sync(event):
    """Resumes a sync that handed over before its invocation ran out of time."""
    time_left = web.time_left_for_event(event.context)
    return queue_batch.run(
        [record.to_dict() for record in event],
        lambda message: sync.resume_message(wiring.amo(), message.json(), time_left),
        "sync",
    )


@app.schedule(Rate(settings.sync_schedule_minutes(), unit=Rate.MINUTES), name="incremental-sync")
def scheduled_sync(event):
    """Heals missed webhooks: leads, contacts and tasks changed since the last run."""
    return sync.scheduled_sync(wiring.amo(), web.time_left_for_event(event.context))


# -- webhooks and Main Backend notifications ----------------------------------------------------


@app.route(
    f"{P}/webhook",
    methods=["POST"],
    content_types=["application/x-www-form-urlencoded", "application/json", "text/plain"],
)
@web.maps_errors
def webhook():
    request = web.request(app)
    return webhooks.receive(
        web.raw_body(request),
        content_type=request.headers.get("content-type"),
        query=web.query(request),
        amo=wiring.amo,
    )


@app.route(f"{P}/webhook/register", methods=["POST", "DELETE"])
@web.maps_errors
def webhook_register():
    request = web.request(app)
    body = validation.body_object(web.optional_json(request))
    url = validation.string(body, field="url", required=False)
    own_url = web.own_url(request, "webhook")
    amo = wiring.amo()
    if request.method == "DELETE":
        return webhooks.unregister(amo, url, own_url)
    foreign = validation.boolean(body, "allowForeignDestination", default=False)
    return webhooks.register(amo, url=url, own_url=own_url, allow_foreign=foreign)


@app.route(f"{P}/activity", methods=["GET"])
@web.maps_errors
def webhook_activity():
    params = web.query(web.request(app))
    return activity.activity(
        params.get("entity", ""),
        validation.query_int(params, name="id", default=0) or None,
        validation.query_int(params, name="limit", default=50, minimum=1, maximum=1000),
    )


@app.on_sqs_message(
    queue=settings.webhook_queue_name(),
    batch_size=25,
    maximum_batching_window_in_seconds=1,
    maximum_concurrency=2,
    name="process-webhooks",
)
def process_webhooks(event):
    return webhook_events.handle_queue_batch(wiring.amo(), [record.to_dict() for record in event])


@app.on_sqs_message(queue=settings.notify_queue_name(), batch_size=10, name="deliver-notifications")
def deliver_notifications(event):
    return queue_batch.run([record.to_dict() for record in event], notifications.handle_message, "notification")


@app.schedule(Rate(1, unit=Rate.HOURS), name="notification-sweeper")
def sweep_notifications(event):
    """Re-sends notifications still pending (e.g. recorded while the queue was unreachable), and
    erases guests' personal data past PERSONAL_DATA_RETENTION_DAYS."""
    return {**notifications.deliver_pending(), "personalDataExpired": retention.sweep()}


@app.route(f"{P}/openapi.json", methods=["GET"])
def openapi():
    return web.openapi_document()


# -- schedules -----------------------------------------------------------------------------------


@app.schedule(Rate(12, unit=Rate.HOURS), name="refresh-token")
def scheduled_token_refresh(event):
    """Keeps the ~3-month refresh token alive even when nothing else calls amoCRM, and reports
    how long a long-lived token has left."""
    return token_expiry.keep_alive(wiring.token_store())
