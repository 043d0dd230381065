"""Pipelines and stages: sync, re-sync keeping mappings, manual mapping, auto-apply."""

import pytest

from chalicelib import wiring
from chalicelib.models import AmoPipeline, AmoStage
from chalicelib.services import pipelines
from chalicelib.services.errors import InvalidInput, NotFound
from tests import fixtures
from tests.fixtures import HAL, HOST, store_tokens

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

PIPELINES_URL = f"{HOST}/api/v4/leads/pipelines"
SALES, RENTALS = 3177727, 3177731


@pytest.fixture
def synced(amo):
    store_tokens()
    amo.get(PIPELINES_URL, json=fixtures.pipelines_body(), headers=HAL)
    return pipelines.sync_pipelines(wiring.amo())


def stage(pipeline_id, stage_id):
    return AmoStage.get(pipeline_id, stage_id)


def test_sync_stores_pipelines_and_each_pipelines_own_142_and_143(synced):
    assert synced["synced"] == 2 and synced["errors"] == []
    assert {p.id for p in AmoPipeline.scan()} == {SALES, RENTALS}
    assert stage(SALES, 142).name == "Успешно реализовано"
    assert stage(RENTALS, 142).name == "Closed - won"
    assert len(list(AmoStage.by_stage_id.query(143))) == 2
    assert stage(SALES, 58141803).type == 1 and stage(SALES, 58141803).color == "#c1c1c1"


def test_resync_updates_names_keeps_manual_mappings_and_drops_vanished_stages(synced, amo):
    pipelines.update_stage_mapping(58141811, "IN_PROGRESS")
    pipelines.update_stage_mapping(142, "CLOSED", pipeline_id=SALES)
    body = fixtures.pipelines_body(won_name="ОПЛАЧЕНО")
    body["_embedded"]["pipelines"][0]["_embedded"]["statuses"][2]["name"] = "Переговоры (торг)"
    del body["_embedded"]["pipelines"][0]["_embedded"]["statuses"][3]  # "Принимают решение" deleted
    amo.replace("GET", PIPELINES_URL, json=body, headers=HAL)

    result = pipelines.sync_pipelines(wiring.amo())

    assert result["stagesRemoved"] == 1 and result["errors"] == []
    negotiation = stage(SALES, 58141811)
    assert negotiation.name == "Переговоры (торг)"
    assert (negotiation.mapped_status, negotiation.mapping_source) == ("IN_PROGRESS", "manual")
    won = stage(SALES, 142)
    assert won.name == "ОПЛАЧЕНО" and won.mapped_status == "CLOSED"
    with pytest.raises(AmoStage.DoesNotExist):
        stage(SALES, 58141815)


def test_a_pipeline_removed_in_amocrm_is_removed_with_its_stages(synced, amo):
    body = fixtures.pipelines_body()
    body["_embedded"]["pipelines"].pop(1)
    amo.replace("GET", PIPELINES_URL, json=body, headers=HAL)
    pipelines.sync_pipelines(wiring.amo())
    assert {p.id for p in AmoPipeline.scan()} == {SALES}
    assert list(AmoStage.query(RENTALS)) == []


def test_a_malformed_pipeline_is_reported_and_the_rest_synced(amo):
    store_tokens()
    body = fixtures.pipelines_body()
    body["_embedded"]["pipelines"][1]["_embedded"]["statuses"][1]["id"] = "oops"
    amo.get(PIPELINES_URL, json=body, headers=HAL)
    result = pipelines.sync_pipelines(wiring.amo())
    assert result["synced"] == 1
    assert result["errors"][0]["id"] == RENTALS and "integer id" in result["errors"][0]["message"]


def test_an_empty_answer_never_wipes_the_mirror(synced, amo):
    amo.replace("GET", PIPELINES_URL, status=204)
    result = pipelines.sync_pipelines(wiring.amo())
    assert result["errors"] and len(list(AmoPipeline.scan())) == 2


def test_mapping_rejects_an_unknown_status_naming_the_allowed_values(synced):
    with pytest.raises(InvalidInput, match="NEW, IN_PROGRESS, CLOSED"):
        pipelines.update_stage_mapping(58141811, "DONE")


def test_mapping_an_unknown_stage_is_not_found(synced):
    with pytest.raises(NotFound):
        pipelines.update_stage_mapping(999, "NEW")
    with pytest.raises(NotFound):
        pipelines.update_stage_mapping(58141811, "NEW", pipeline_id=RENTALS)


def test_mapping_142_without_pipeline_maps_it_in_every_pipeline(synced):
    result = pipelines.update_stage_mapping(142, "CLOSED")
    assert len(result["data"]) == 2
    assert {stage(SALES, 142).mapping_source, stage(RENTALS, 142).mapping_source} == {"manual"}


def test_mapping_a_shared_regular_stage_id_needs_a_pipeline(synced):
    AmoStage(pipeline_id=RENTALS, id=58141811, name="copy", sort=5).save()
    with pytest.raises(InvalidInput, match="pass pipelineId"):
        pipelines.update_stage_mapping(58141811, "NEW")
    pipelines.update_stage_mapping(58141811, "NEW", pipeline_id=RENTALS)
    assert stage(RENTALS, 58141811).mapped_status == "NEW"
    assert stage(SALES, 58141811).mapped_status is None


def test_suggestions_cover_every_stage_with_system_ones_certain(synced):
    data = {(s["pipelineId"], s["stageId"]): s for s in pipelines.get_suggested_mappings()["data"]}
    assert len(data) == 11
    assert data[(RENTALS, 143)]["suggestedStatus"] == "CLOSED" and data[(RENTALS, 143)]["confidence"] == 1.0
    assert data[(SALES, 58141807)]["suggestedStatus"] == "NEW"
    assert data[(RENTALS, 58141911)]["suggestedStatus"] == "IN_PROGRESS"


def test_auto_apply_respects_the_confidence_threshold(synced):
    AmoStage(pipeline_id=SALES, id=58141899, name="Ква-ква", sort=35).save()
    result = pipelines.apply_auto_mapping(min_confidence=0.99)
    assert result["applied"] == 4  # only 142/143 of both pipelines
    assert stage(SALES, 58141899).mapped_status is None
    assert pipelines.apply_auto_mapping(min_confidence=0.0)["applied"] == 8


def test_stage_lists_are_sorted_and_paged(synced):
    first = pipelines.get_stages(SALES, 4, None)
    assert [s["id"] for s in first["data"]] == [58141803, 58141807, 58141811, 58141815]
    second = pipelines.get_stages(SALES, 4, first["nextCursor"])
    assert [s["id"] for s in second["data"]] == [142, 143] and "nextCursor" not in second
    assert second["count"] == 2


def test_stages_of_an_unknown_pipeline_are_not_found(synced):
    with pytest.raises(NotFound):
        pipelines.get_stages(1, 100, None)


def test_mapped_status_of_a_lead_stage(synced):
    pipelines.update_stage_mapping(58141811, "IN_PROGRESS")
    assert pipelines.mapped_status_of(SALES, 58141811) == "IN_PROGRESS"
    assert pipelines.mapped_status_of(SALES, 58141807) is None
    assert pipelines.mapped_status_of(RENTALS, 143) == "CLOSED"
