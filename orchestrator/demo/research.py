"""The seed's ``research_assistant`` pipeline, simulated: no network, no model.

``init → validate_input → prepare_query → web_search → analyze_results →
generate_report``. Each task sleeps a little where the real one would wait on a search
engine or a model, counts model calls and tokens (``execution_details``), and returns
data shaped like the seed's task state (``results``, ``metadata.sources_found``,
``quality_score``). ``web_search`` fetches its pages one by one and checkpoints after
each (``search_page_<n>``); resumed, it starts after the last page it saved.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from orchestrator.runtime import Pipeline, TaskContext, TaskError
from orchestrator.state import checkpoint

PIPELINE_ID = "research_assistant"
PAGES = 3
DEFAULT_QUERY = "quantum computing applications"


def _score(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return round(0.6 + digest[0] / 255 * 0.4, 2)


def build_pipeline(*, page_seconds: float = 1.0, step_seconds: float = 0.1) -> Pipeline:
    """The pipeline; ``page_seconds`` is how long one search page takes."""
    pipeline = Pipeline(PIPELINE_ID)

    @pipeline.task()
    async def init(context: TaskContext) -> dict[str, Any]:
        await asyncio.sleep(step_seconds)
        data = context.input_data or {}
        return {"query": data.get("query", DEFAULT_QUERY), "user_id": context.user_id}

    @pipeline.task(depends_on=["init"])
    async def validate_input(init: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(step_seconds)
        query = str(init["query"]).strip()
        if len(query) < 3:
            raise TaskError(f"query {query!r} is too short", retryable=False)
        return {"query": query, "max_results": 20}

    @pipeline.task(depends_on=["validate_input"])
    async def prepare_query(validate_input: dict[str, Any], context: TaskContext) -> dict[str, Any]:
        await asyncio.sleep(step_seconds * 2)
        context.record_usage(model_calls=1, tokens=180)
        words = validate_input["query"].split()
        return {**validate_input, "keywords": words, "expanded": [*words, "survey", "2024"]}

    @pipeline.task(depends_on=["prepare_query"])
    async def web_search(prepare_query: dict[str, Any], context: TaskContext) -> dict[str, Any]:
        saved = context.last_checkpoint or {"pages": 0, "results": []}
        results: list[dict[str, Any]] = list(saved["results"])
        per_page = prepare_query["max_results"] // PAGES + 1
        for page in range(saved["pages"] + 1, PAGES + 1):
            await asyncio.sleep(page_seconds)  # the search engine answering
            context.record_usage(model_calls=1, tokens=500)  # re-ranking the page
            for rank in range(per_page):
                if len(results) >= prepare_query["max_results"]:
                    break
                results.append(
                    {
                        "url": f"https://example.org/{page}/{rank}",
                        "title": f"{prepare_query['query'].title()} — source {page}.{rank}",
                        "score": _score(prepare_query["query"], page, rank),
                    }
                )
            await checkpoint.save(
                name=f"search_page_{page}",
                data={"pages": page, "results": results, "progress": round(page / PAGES, 2)},
                metadata={"page": page, "results_so_far": len(results)},
            )
        quality = round(sum(r["score"] for r in results) / max(1, len(results)), 2)
        return {
            "results": results,
            "metadata": {"sources_found": len(results), "quality_score": quality},
        }

    @pipeline.task(depends_on=["web_search"])
    async def analyze_results(web_search: dict[str, Any], context: TaskContext) -> dict[str, Any]:
        await asyncio.sleep(step_seconds * 3)
        context.record_usage(model_calls=2, tokens=2400)
        top = sorted(web_search["results"], key=lambda r: r["score"], reverse=True)[:5]
        return {
            "findings": [r["title"] for r in top],
            "quality_score": web_search["metadata"]["quality_score"],
        }

    @pipeline.task(depends_on=["analyze_results"])
    async def generate_report(
        analyze_results: dict[str, Any], context: TaskContext
    ) -> dict[str, Any]:
        await asyncio.sleep(step_seconds * 2)
        context.record_usage(model_calls=1, tokens=1800)
        findings = analyze_results["findings"]
        return {
            "title": f"Research report: {(context.input_data or {}).get('query', DEFAULT_QUERY)}",
            "sections": ["Summary", "Key findings", "Sources"],
            "key_findings": findings[:3],
            "word_count": 350 + 40 * len(findings),
        }

    return pipeline
