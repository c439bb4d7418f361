from __future__ import annotations

from shared.api import endpoints, openapi


def test_document_is_openapi_3_1_with_every_endpoint_and_resolvable_refs() -> None:
    doc = openapi.document(endpoints.ALL)
    assert doc["openapi"] == "3.1.0"
    operations = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert operations == {(e.path, e.method.lower()) for e in endpoints.DOCUMENTED}
    operation_ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))
    schemas = doc["components"]["schemas"]

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas, ref


def test_protected_operations_declare_bearer_security_and_problem_responses() -> None:
    doc = openapi.document(endpoints.ALL)
    me = doc["paths"]["/api/me"]["get"]
    assert me["security"] == [{"bearer": []}]
    assert me["responses"]["401"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"}
    assert doc["paths"]["/api/status"]["get"]["security"] == []


def test_conflicts_that_say_when_to_retry_declare_retry_after() -> None:
    doc = openapi.document(endpoints.ALL)
    for path, method in (("/api/relationship-intelligence/enable", "post"), ("/api/sync/users", "post"),
                         ("/api/sync/activities", "post")):
        responses = doc["paths"][path][method]["responses"]
        assert "Retry-After" in responses["409"]["headers"], path
        assert "Retry-After" in responses["503"]["headers"], path


def test_route_constraints_are_stripped_from_paths() -> None:
    endpoint = endpoints.Endpoint(function_name="x", method="GET", route="insights/{entityType:alpha}/{id:guid?}",
                                summary="", tag="t", auth="user")
    assert endpoint.path == "/api/insights/{entityType}/{id}"
    assert endpoint.path_parameters == ["entityType", "id"]


def test_each_sync_kind_publishes_its_item_schema_with_the_service_limits() -> None:
    from shared.domain.records import RECORD_KINDS

    doc = openapi.document(endpoints.ALL)
    schemas = doc["components"]["schemas"]
    assert "/api/sync/{kind}" not in doc["paths"]
    for kind, model in RECORD_KINDS.items():
        operation = doc["paths"][f"/api/sync/{kind}"]["post"]
        assert operation["operationId"] == f"sync_records_{kind}"
        assert "rejected" in operation["description"]
        assert "parameters" not in operation  # the kind is in the path itself
        body = schemas[operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
        items = body["properties"]["items"]
        assert (items["minItems"], items["maxItems"]) == (1, 1000)
        assert items["items"] == {"$ref": f"#/components/schemas/{model.__name__}"}
        item = schemas[model.__name__]
        assert item["additionalProperties"] is False  # unknown fields are refused, so no body can slip in
        assert {"id", "version"} <= set(item["required"])
        assert item["properties"]["id"]["maxLength"] == 100
    assert schemas["InternalUser"]["properties"]["optedOut"] == {"default": False, "title": "Optedout",
                                                                  "type": "boolean"}
    assert schemas["Activity"]["properties"]["to"]["maxItems"] == 500
