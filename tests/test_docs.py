"""make docs: dbt's documentation as one static page that a browser draws from disk without any network,
with the contracted models and their columns in it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from billing_usage.settings import DATABASE_URL_ENV, PROJECT_ROOT
from tests.test_report import chromium  # noqa: F401  (Debian's chromium, installed when missing)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def docs(database_factory, tmp_path_factory):
    warehouse = database_factory("docs")  # not built: the docs come from the project, types from the catalog
    out = tmp_path_factory.mktemp("docs")
    result = subprocess.run([sys.executable, "-m", "cli.docs", "--out", str(out)], cwd=PROJECT_ROOT,
                            env={**os.environ, DATABASE_URL_ENV: warehouse.url}, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return {"out": out, "stdout": result.stdout}


def test_one_self_contained_page_with_tracking_off(docs):
    page = docs["out"] / "static_index.html"
    assert page.is_file() and str(page) in docs["stdout"]
    manifest = json.loads((docs["out"] / "manifest.json").read_text())
    assert manifest["metadata"]["send_anonymous_usage_stats"] is False
    statements = manifest["nodes"]["model.billing_usage.rpt_cycle_statements"]
    assert statements["schema"] == "reporting" and statements["config"]["contract"]["enforced"]
    assert all(column["data_type"] and column["description"] for column in statements["columns"].values())


def test_the_page_draws_offline_in_headless_chromium(docs, chromium):  # noqa: F811
    from playwright.sync_api import sync_playwright

    page_path = docs["out"] / "static_index.html"
    outside: list[str] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            context = browser.new_context()
            # no network at all: anything that is not the file itself (or inline data) is refused and recorded
            context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
                          else (outside.append(route.request.url), route.abort()))
            page = context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(page_path.as_uri() + "#!/model/model.billing_usage.rpt_cycle_statements", wait_until="load")
            page.locator('text="coverage_status" >> visible=true').first.wait_for(timeout=30_000)
            body = page.inner_text("body")
        finally:
            browser.close()
    assert "rpt_cycle_statements" in body and "total_cost_usd" in body and "data_refreshed_at" in body
    assert outside == [] and errors == []
