"""The pipeline that computes a run's aggregates from its test runs, stage by stage."""

from __future__ import annotations

from bson import ObjectId

from evalstore.analysis.pipelines import run_aggregates_pipeline


def test_run_aggregates_pipeline_is_one_match_then_three_facets() -> None:
    oid = ObjectId("65a1b2c3d4e5f6a7b8c9d0e1")
    assert run_aggregates_pipeline(oid) == [
        {"$match": {"evaluation_run_id": oid}},
        {
            "$facet": {
                "counts": [
                    {"$group": {"_id": "$status", "tests": {"$sum": 1}}},
                    {"$sort": {"_id": 1}},
                ],
                "score": [
                    {"$group": {"_id": None, "score": {"$avg": "$score"}}},
                ],
                "means": [
                    {
                        "$project": {
                            "_id": 0,
                            "metric": {"$objectToArray": {"$ifNull": ["$metrics", {}]}},
                        }
                    },
                    {"$unwind": "$metric"},
                    {"$group": {"_id": "$metric.k", "mean": {"$avg": "$metric.v.score"}}},
                    {"$sort": {"_id": 1}},
                ],
            }
        },
    ]


def test_run_aggregates_pipeline_builds_fresh_documents() -> None:
    oid = ObjectId()
    first = run_aggregates_pipeline(oid)
    first[1]["$facet"]["counts"].append({"$limit": 1})
    assert len(run_aggregates_pipeline(oid)[1]["$facet"]["counts"]) == 2
