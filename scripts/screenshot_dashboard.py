"""Take the README's screenshots of the dashboard, on the demo history.

Starts `evalstore serve --demo` on a free port, opens the runs page and the latest
run's page in the system Chromium (headless, 1200x800, driven by Playwright; nothing is
downloaded) and saves the visible part of each page:

    docs/dashboard.png        the latest run (the one the README shows)
    docs/dashboard-runs.png   the runs page

Usage, from the repository root, in the dev environment (`pip install -e '.[test]'`
and `apt-get install chromium`):

    python scripts/screenshot_dashboard.py [--out docs] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parents[1]
VIEWPORT = {"width": 1200, "height": 800}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ALL_CHARTS_DRAWN = """() => Array.from(document.querySelectorAll("[data-chart]"))
  .every((el) => el.getAttribute("data-drawn") === "true")"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_demo(port: int) -> subprocess.Popen[bytes]:
    """`evalstore serve --demo`, with the `evalstore` script next to this Python."""
    script = Path(sys.executable).parent / "evalstore"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "evalstore.cli"]
    return subprocess.Popen([*command, "serve", "--demo", "--port", str(port)])


def wait_for(url: str, server: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"evalstore serve exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/api", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the dashboard did not answer on {url} within {timeout_s} s")


def shoot(page: Page, path: Path) -> None:
    page.wait_for_load_state("load")
    page.wait_for_function(ALL_CHARTS_DRAWN)
    page.screenshot(path=str(path))  # the viewport only: small, and what a visitor sees
    print(f"{path}: {path.stat().st_size // 1024} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="folder (docs/)")
    parser.add_argument(
        "--chromium",
        default=shutil.which("chromium") or "/usr/bin/chromium",
        help="the Chromium executable (default: the system package's)",
    )
    args = parser.parse_args()
    if not Path(args.chromium).is_file():
        raise SystemExit(f"chromium not found at {args.chromium}: apt-get install chromium")
    args.out.mkdir(parents=True, exist_ok=True)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_demo(port)
    try:
        wait_for(url, server)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True
            )
            page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            page.goto(f"{url}/runs")
            shoot(page, args.out / "dashboard-runs.png")
            page.locator("#runs-table a.run-link").first.click()
            page.wait_for_url(f"{url}/runs/*")
            shoot(page, args.out / "dashboard.png")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
