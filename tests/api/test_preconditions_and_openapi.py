"""Issue 20, item 9: If-Match / If-Unmodified-Since are evaluated, and OpenAPI documents what is answered."""

from __future__ import annotations

from email.utils import formatdate

import httpx

PARQUET = "/v1/datasets/station_usage_daily/download.parquet"


def test_if_match_on_a_computed_answer_fails_unless_it_is_a_star(client: httpx.Client) -> None:
    answer = client.get("/v1/datasets")
    etag = answer.headers["etag"]
    assert etag.startswith('W/"')
    # A weak ETag never matches If-Match (RFC 9110 §13.1.1): only "*" does.
    refused = client.get("/v1/datasets", headers={"If-Match": etag})
    assert refused.status_code == 412 and "If-Match" in refused.json()["error"]
    assert client.get("/v1/datasets", headers={"If-Match": '"other"'}).status_code == 412
    star = client.get("/v1/datasets", headers={"If-Match": "*"})
    assert star.status_code == 200 and star.content == answer.content
    # A failed If-Match wins over a matching If-None-Match (evaluation order of RFC 9110 §13.2.2).
    both = client.get("/v1/datasets", headers={"If-Match": '"other"', "If-None-Match": etag})
    assert both.status_code == 412


def test_a_download_honours_if_match_and_if_unmodified_since_with_its_strong_etag(
    client: httpx.Client,
) -> None:
    head = client.head(PARQUET)
    etag, modified = head.headers["etag"], head.headers["last-modified"]
    assert not etag.startswith("W/")
    part = client.get(PARQUET, headers={"If-Match": etag, "Range": "bytes=0-3"})
    assert part.status_code == 206 and part.content == b"PAR1"
    assert client.get(PARQUET, headers={"If-Match": '"not-this-file"'}).status_code == 412
    assert client.get(PARQUET, headers={"If-Unmodified-Since": modified}).status_code == 200
    long_ago = formatdate(0, usegmt=True)
    assert client.get(PARQUET, headers={"If-Unmodified-Since": long_ago}).status_code == 412
    # If-Unmodified-Since is ignored when If-Match is given (RFC 9110 §13.1.4).
    both = client.get(
        PARQUET, headers={"If-Match": etag, "If-Unmodified-Since": long_ago, "Range": "bytes=0-3"}
    )
    assert both.status_code == 206
    assert client.get(PARQUET, headers={"If-Unmodified-Since": "not a date"}).status_code == 200


def test_the_openapi_document_lists_the_error_statuses_and_media_types_that_are_answered(
    client: httpx.Client,
) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    rows = paths["/v1/datasets/{name}/rows"]["get"]["responses"]
    assert "422" not in rows  # validation errors are answered as 400
    assert {"200", "304", "400", "404", "412", "503"} <= set(rows)
    assert rows["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert {"application/json", "text/csv", "application/geo+json"} <= set(rows["200"]["content"])
    sql = paths["/v1/sql"]["get"]["responses"]
    assert {"400", "413", "429"} <= set(sql) and "text/csv" in sql["200"]["content"]
    download = paths["/v1/datasets/{name}/download.parquet"]["get"]["responses"]
    assert {"206", "304", "412", "416"} <= set(download)
    assert doc["components"]["schemas"]["Error"]["required"] == ["error", "status"]
    assert not any("422" in op["responses"] for ops in paths.values() for op in ops.values())
    # What the document promises is what a bad request gets.
    bad = client.get("/v1/datasets/station_usage_daily/rows?limit=-1")
    assert bad.status_code == 400 and set(bad.json()) == {"error", "status"}
