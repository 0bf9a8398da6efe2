"""The results browser: the pages a study writes, read as files, opened in a real browser (headless
Chromium driven by Selenium, from file:// and over `python -m ablation serve`), and the server."""

from __future__ import annotations

import html.parser
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

import pandas as pd
import pytest

from ablation.report import pages, tables
from ablation.report import server as server_module
from ablation.study import Options
from ablation.study.runner import run_study
from tests.helpers import ROOT, needs_graphviz, quiet
from tests.tiny_study import STUDY as TINY

CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def study(easy, tmp_path_factory) -> Path:
    """The tiny study's smoke protocol (WRN-10-1 with and without dropout, two seeds), trained once."""
    results = tmp_path_factory.mktemp("pages") / "tiny-smoke"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run_study(TINY, Options(protocol="smoke", dataset=easy), results_dir=results, log=quiet) == 0
    return results


class Links(html.parser.HTMLParser):
    """Every src and href of a page."""

    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        self.links += [(tag, name, value) for name, value in attrs if name in ("src", "href") and value]


def links_of(page: Path) -> list:
    parser = Links()
    parser.feed(page.read_text())
    return parser.links


def local_target(page: Path, link: str) -> Path | None:
    """The file a local link points to, or None for data: URLs and anchors."""
    if link.startswith(("data:", "#")):
        return None
    return (page.parent / urllib.parse.unquote(urllib.parse.urlsplit(link).path)).resolve()


# ----------------------------------------------------------------------------------------------
# The pages as files


@pytest.mark.slow
def test_the_index_links_every_run_page_and_every_local_link_exists(study):
    index = study / "index.html"
    run_ids = list(pd.read_csv(study / "results.csv")["run_id"])
    linked = {link for _, _, link in links_of(index)}
    assert {f"runs/{urllib.parse.quote(run_id)}/index.html" for run_id in run_ids} <= linked
    pages_to_check = [index] + [study / "runs" / run_id / "index.html" for run_id in run_ids]
    for page in pages_to_check:
        for tag, name, link in links_of(page):
            # Self-contained: nothing from the network (no CDN, no web fonts).
            assert not link.startswith(("http:", "https:", "//")), (page, link)
            target = local_target(page, link)
            assert target is None or target.exists(), (page, tag, name, link)
        text = page.read_text()
        assert "@import" not in text and "url(http" not in text


@pytest.mark.slow
def test_the_index_holds_the_verdicts_the_tables_and_the_plots(study):
    text = (study / "index.html").read_text()
    assert "Verdicts" in text and "WRN-10-1-dropout against WRN-10-1" in text and TINY.question in text
    assert text.count("<table") >= 2  # summary.md's table and the runs
    for plot in ("error_over_seeds.png", "learning_curves.png", "error_vs_params.png"):
        assert f'src="{plot}"' in text


@pytest.mark.slow
def test_a_run_page_shows_its_metrics_configuration_curves_and_architecture(study):
    dropout = next(run_id for run_id in pd.read_csv(study / "results.csv")["run_id"] if "dropout" in run_id)
    text = (study / "runs" / dropout / "index.html").read_text()
    for section in ("Metrics", "Per-class test accuracy", "Configuration", "Architecture", "Model summary"):
        assert f">{section}</h2>" in text, section
    assert 'src="learning_curves.png"' in text and 'src="confusion_matrix.png"' in text
    assert "<th>batch_size</th><td>32</td>" in text and "<th>dropout_rate</th><td>0.3</td>" in text
    # The stage view: blocks counted, dropout marked; the full graph inline, its nodes named by layer.
    assert "<b>group2</b>" in text and "&times;</span> [BN-ReLU-conv3x3 32/2-BN-ReLU-<mark>dropout 0.3</mark>" in text
    # The summary at full width: the params and connections columns are there.
    assert "Param #" in text and "Connected to" in text


@pytest.mark.slow
@needs_graphviz
def test_a_run_page_inlines_the_architecture_graph_with_its_nodes_named_by_layer(study):
    run_id = pd.read_csv(study / "results.csv")["run_id"][0]
    text = (study / "runs" / run_id / "index.html").read_text()
    assert '<g id="group2_block1_conv1" class="node">' in text and "<?xml" not in text


@pytest.mark.slow
def test_pages_that_cannot_be_written_are_one_warning(study, monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    copy = shutil.copytree(study, tmp_path / "copy")  # the shared fixture stays as the study wrote it
    written = [copy / "index.html", copy / "results.csv", copy / "summary.md"]
    for path in written + list(copy.glob("runs/*/index.html")):
        path.unlink()
    monkeypatch.setattr(pages, "write_run_page", broken)
    with pytest.warns(UserWarning, match="web pages not written .OSError: No space left on device") as caught:
        frame = tables.write_study_report(copy)
    # A warning per run page, and no run page; the index and the tables are written again.
    assert sum("web pages not written" in str(w.message) for w in caught) == 4 and len(frame) == 4
    assert not list(copy.glob("runs/*/index.html"))
    assert all(path.stat().st_size > 0 for path in written)


# ----------------------------------------------------------------------------------------------
# python -m ablation serve


def serve(folder, *args):
    # As a shell starts a command: Ctrl-C (SIGINT) at its default, whatever this test process has
    # inherited (a C library's system() in another thread ignores it for a while, and a child
    # started then would ignore Ctrl-C).
    return subprocess.Popen([sys.executable, "-m", "ablation", "serve", str(folder), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def request(url, method="GET"):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method, data=b"x" if method != "GET" else None),
                                    timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


@pytest.mark.slow
def test_serve_shows_the_folder_read_only_on_this_machine_and_stops_on_ctrl_c(tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html><title>t</title>")
    (tmp_path / "secret.txt").write_text("outside")
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "index.html").write_text("<!doctype html><title>study</title>")
    server = serve(folder, "--port", "0")
    try:
        line = server.stdout.readline()
        assert line.startswith(f"serving {folder} read-only at http://127.0.0.1:") and "Ctrl-C stops" in line
        url = line.split(" at ")[1].split("; ")[0]
        assert request(url + "index.html") == (200, b"<!doctype html><title>study</title>")
        assert request(url + "../secret.txt")[0] == 404  # nothing outside the folder
        for method in ("POST", "PUT", "DELETE"):
            assert request(url + "index.html", method)[0] == 501, method
        assert (folder / "index.html").read_text() == "<!doctype html><title>study</title>"
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0 and "Traceback" not in err


@pytest.mark.parametrize("args,message", [
    (["/no/such/folder"], "'/no/such/folder' is not a folder; expected a results folder"),
    ([".", "--port", "70000"], "--port 70000 is not valid; expected 0..65535"),
])
def test_serve_refuses_bad_input_in_one_line(args, message, capsys):
    from ablation.cli import main

    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path, capsys):
    from ablation.cli import main

    taken = server_module.make_server(tmp_path, "127.0.0.1", 0)
    try:
        port = taken.server_address[1]
        assert main(["serve", str(tmp_path), "--port", str(port)]) == 2
    finally:
        taken.server_close()
    err = capsys.readouterr().err
    assert f"cannot serve on 127.0.0.1:{port} (the port is in use)" in err and f"--port {port + 1}" in err
    assert err.count("\n") == 1


def test_serve_answers_only_for_visible_regular_files_inside_its_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside")
    folder = tmp_path / "study"
    (folder / "runs" / "r1").mkdir(parents=True)
    (folder / "runs" / "r2").mkdir()
    (folder / "index.html").write_text("study")
    (folder / "runs" / "r1" / "index.html").write_text("run")
    (folder / "runs" / "r1" / "metrics.json").write_text("{}")
    (folder / "runs" / "r1" / ".lock").write_text("host 1234")
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "file.txt").write_text("hidden")
    (folder / "passwd").symlink_to("/etc/passwd")
    (folder / "etc").symlink_to("/etc")
    (folder / "secret.txt").symlink_to(outside / "secret.txt")
    (folder / "up").symlink_to(outside)
    (folder / "lock").symlink_to(folder / "runs" / "r1" / ".lock")
    (folder / "metrics.json").symlink_to(folder / "runs" / "r1" / "metrics.json")  # a link inside: served
    served = server_module.make_server(folder, "127.0.0.1", 0)
    threading.Thread(target=served.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{served.server_address[1]}/"
    try:
        assert request(base + "index.html") == (200, b"study")
        assert request(base + "runs/r1/") == (200, b"run")
        assert request(base + "metrics.json") == (200, b"{}")
        for path in ["passwd", "etc/", "etc/passwd", "secret.txt", "up/secret.txt", "up/", "lock",
                     "runs/r1/.lock", ".hidden/file.txt", ".hidden/", "%2e%2e/outside/secret.txt",
                     "runs/", "runs/r2/", "runs/r1/%00"]:
            assert request(base + path)[0] == 404, path  # no listing of a folder without index.html either
        with urllib.request.urlopen(base + "runs/r1", timeout=10) as response:  # redirected to runs/r1/
            assert response.url.endswith("/runs/r1/") and response.read() == b"run"
        for path in ["index.html", "passwd"]:
            try:
                response = urllib.request.urlopen(base + path, timeout=10)
            except urllib.error.HTTPError as error:
                response = error
            headers = response.headers
            assert "default-src 'none'" in headers["Content-Security-Policy"], path
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Server"] == "ablation-serve", path  # no Python or library version
    finally:
        served.shutdown()
        served.server_close()


@pytest.fixture
def served(tmp_path):
    """A folder with a run page and a folder named like a host, served in this process: (folder, port)."""
    folder = tmp_path / "study"
    (folder / "runs" / "RUN").mkdir(parents=True)
    (folder / "index.html").write_text("study")
    (folder / "runs" / "RUN" / "index.html").write_text("run")
    for name in ("evil.com", "\\evil.com"):
        (folder / name).mkdir()
        (folder / name / "index.html").write_text("evil")
    server = server_module.make_server(folder, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield folder, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def raw_request(port, data: bytes) -> bytes:
    # A raw socket: urllib would clean up the request forms a hostile client sends as they are.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(data)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    return answer


def test_serve_closes_a_connection_that_never_finishes_its_request(served, monkeypatch):
    # One thread per connection: a client that sends half a request line and waits (slowloris) would
    # hold its thread for ever, and many such clients the whole server.
    assert 0 < (server_module.ReadOnlyHandler.timeout or 0) <= 120
    monkeypatch.setattr(server_module.ReadOnlyHandler, "timeout", 0.5)  # the same, sooner
    _, port = served
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"GET /index.html HT")
        assert client.recv(100) == b""  # closed by the server, well before the client's 10 s


def test_serve_redirects_a_folder_only_to_a_path_on_this_server(served):
    _, port = served
    for target, location in [("/runs/RUN", "/runs/RUN/"), ("/%2Fruns/RUN", "/runs/RUN/"),
                             ("/%2Fevil.com", "/evil.com/"), ("/%2F%2Fevil.com", "/evil.com/"),
                             ("//evil.com", "/evil.com/"), ("/./%2Fevil.com", "/evil.com/"),
                             ("http://x//evil.com", "/evil.com/"), ("http://x/%2Fevil.com", "/evil.com/"),
                             ("/\\evil.com", "/%5Cevil.com/"), ("/%5Cevil.com", "/%5Cevil.com/"),
                             ("/evil.com?next=//a", "/evil.com/"), ("evil.com", "/evil.com/"),
                             ("http:evil.com", "/evil.com/"), ("http://evil.com", "/"), ("?x", "/")]:
        answer = raw_request(port, f"GET {target} HTTP/1.0\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.0 301 "), target
        assert f"\r\nLocation: {location}\r\n".encode() in answer, target  # never //host, scheme: or relative


def test_serve_refuses_http_0_9_which_has_no_headers_to_carry_the_policy(served):
    _, port = served
    for line in ["GET /index.html", "GET /runs/RUN/", "HEAD /index.html"]:
        assert raw_request(port, f"{line}\r\n\r\n".encode()) == b"", line  # not the file without its policy


def test_serve_answers_a_malformed_request_line_with_a_status_and_the_policy(served):
    _, port = served
    for line in ["GET / HTTP/x", "GET /index.html HTTP/2.0", "GET / HTTP/1.0 extra", "GET"]:
        answer = raw_request(port, f"{line}\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.0 4") or answer.startswith(b"HTTP/1.0 5"), line
        assert b"\r\nContent-Security-Policy: default-src 'none'" in answer, line


def test_serve_says_nothing_when_a_client_hangs_up_mid_download(served, capfd, monkeypatch):
    folder, port = served
    (folder / "big.bin").write_bytes(bytes(16_000_000))
    before = set(threading.enumerate())
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the server stays mid-copy
    client.connect(("127.0.0.1", port))
    client.sendall(b"GET /big.bin HTTP/1.0\r\n\r\n")
    assert client.recv(1024).startswith(b"HTTP/1.0 200 ")
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
    client.close()
    for thread in set(threading.enumerate()) - before:  # the request's thread: done once it has said its say
        thread.join(timeout=30)
    assert capfd.readouterr().err == ""  # a client going away is normal: no traceback
    monkeypatch.setattr(server_module.ReadOnlyHandler, "send_head", lambda self: 1 / 0)
    before = set(threading.enumerate())
    raw_request(port, b"GET /index.html HTTP/1.0\r\n\r\n")
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=30)
    assert "ZeroDivisionError" in capfd.readouterr().err  # any other error is still reported


@pytest.mark.parametrize("host,message", [
    ("192.0.2.1", "cannot serve on 192.0.2.1:0 (Cannot assign requested address); expected an address of this "
                  "machine"),  # TEST-NET-1: documentation only, never this machine's
    ("no-such-host.invalid", "--host 'no-such-host.invalid' is not an address of this machine"),
])
def test_serve_on_an_address_that_cannot_be_had_says_why_in_one_line(host, message, tmp_path, capsys):
    from ablation.cli import main

    assert main(["serve", str(tmp_path), "--host", host, "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_serve_on_every_interface_warns_in_one_line(tmp_path):
    server = serve(tmp_path, "--host", "0.0.0.0", "--port", "0")
    try:
        assert server.stdout.readline().startswith(f"serving {tmp_path} read-only at http://0.0.0.0:")
        warning = server.stderr.readline()
        assert warning.startswith("warning: 0.0.0.0:") and "reachable from other machines" in warning
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)
    server = serve(tmp_path, "--port", "0")  # the default, this machine only: no warning
    try:
        server.stdout.readline()
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    assert "warning" not in err


# ----------------------------------------------------------------------------------------------
# In a real browser


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Selenium (the test command installs chromium and chromium-driver
    where it can, as it installs Graphviz)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements.txt)")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Chromium or its driver is missing: `apt-get install chromium chromium-driver` (make test does "
                    "it when run as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never download a browser or a driver
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def open_page(driver, url):
    """Load a page; the console's errors, and every image that did not load."""
    driver.get(url)
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    broken = driver.execute_script(
        "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
    return errors, broken


@pytest.mark.slow
@needs_graphviz  # the run pages' zoomable graph is Graphviz's SVG
def test_chromium_renders_the_index_and_every_run_page_without_errors(study, browser):
    from selenium.webdriver.common.by import By

    errors, broken = open_page(browser, (study / "index.html").as_uri())
    assert errors == [] and broken == []
    # The runs table sorts on a click: by test error, ascending.
    table = browser.find_elements(By.TAG_NAME, "table")[-1]
    header = next(th for th in table.find_elements(By.TAG_NAME, "th") if th.text.startswith("test_error"))
    column = [th.text for th in table.find_elements(By.TAG_NAME, "th")].index(header.text)
    header.click()
    values = [float(row.find_elements(By.TAG_NAME, "td")[column].text)
              for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert values == sorted(values) and header.get_attribute("aria-sort") == "ascending"

    run_links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href*='runs/']")]
    assert len(run_links) == 4
    for link in run_links:
        errors, broken = open_page(browser, link)
        assert errors == [] and broken == [], link
        graph = browser.find_element(By.CSS_SELECTOR, ".graph")
        assert graph.find_element(By.TAG_NAME, "svg").size["width"] > 0
        before = float(graph.get_attribute("data-scale"))
        browser.find_element(By.CSS_SELECTOR, "[data-zoom=in]").click()
        assert float(graph.get_attribute("data-scale")) == pytest.approx(before * 1.25, rel=1e-3)
        browser.find_element(By.CSS_SELECTOR, "input[type=search]").send_keys("group2_block1_conv2")
        assert browser.find_element(By.CSS_SELECTOR, ".toolbar output").text == "1 layer"
        hit = browser.find_element(By.CSS_SELECTOR, "g.node.hit")
        assert hit.get_attribute("id") == "group2_block1_conv2" and "current" in hit.get_attribute("class")


@pytest.mark.slow
def test_chromium_loads_the_pages_over_serve(study, browser):
    server = server_module.make_server(study, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        errors, broken = open_page(browser, base + "index.html")
        assert errors == [] and broken == []
        run_id = pd.read_csv(study / "results.csv")["run_id"].iloc[0]
        errors, broken = open_page(browser, base + f"runs/{urllib.parse.quote(run_id)}/index.html")
        assert errors == [] and broken == []
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------------------------------
# Folders that others can write to: nothing they put there runs in a reader's browser


def payloads(key: str) -> str:
    """Markup that runs script where it is not escaped: each sets window.pwned to `key`."""
    return (f"<script>window.pwned='{key}'</script><img src=x onerror=\"window.pwned='{key}'\">"
            f"<svg onload=\"window.pwned='{key}'\"></svg>")


SVG_PAYLOADS = ("<script>window.pwned='svg-script'</script>"
                "<foreignObject width='10' height='10'><img xmlns='http://www.w3.org/1999/xhtml' src='x' "
                "onerror=\"window.pwned='svg-foreign'\"/></foreignObject>"
                "<image href='https://example.invalid/track.png' width='1' height='1'/>"
                "<a href=\"javascript:window.pwned='svg-link'\"><text>click</text></a>")


@pytest.fixture(scope="module")
def injected(study, tmp_path_factory) -> Path:
    """A copy of the study whose study.json, summary and run files hold script, its pages rewritten."""
    folder = tmp_path_factory.mktemp("injected") / "tiny-smoke"
    shutil.copytree(study, folder)
    record = json.loads((folder / "study.json").read_text())
    record["name"], record["question"] = payloads("name"), payloads("question") + "\n\\input{/etc/passwd}"
    old = record["baseline"]
    record["baseline"] = new = payloads("configuration") + "\\input{/etc/passwd}"
    for item in record["configurations"] + record["runs"]:
        if item["configuration"] == old:
            item["configuration"] = new
    (folder / "study.json").write_text(json.dumps(record))
    for run in sorted((folder / "runs").iterdir()):
        svg = run / "architecture.svg"
        text = svg.read_text()
        at = text.index(">", text.index("<svg")) + 1
        svg.write_text(text[:at].replace("<svg", "<svg onload=\"window.pwned='svg-onload'\"") + SVG_PAYLOADS
                       + text[at:].replace('class="node"', 'class="node" onmouseover="window.pwned=\'svg-on\'"', 1))
        blocks = json.loads((run / "blocks.json").read_text())
        blocks["title"] = payloads("blocks-title")
        blocks["stages"][0]["stage"] = payloads("blocks-stage")
        (run / "blocks.json").write_text(json.dumps(blocks))
        per_class = pd.read_csv(run / "per_class_accuracy.csv")
        per_class.loc[0, "class"] = payloads("class")
        per_class.to_csv(run / "per_class_accuracy.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a page that could not be written is a failure here
        tables.write_study_report(folder)
    return folder


class Markup(html.parser.HTMLParser):
    """A page's elements and attributes, as a browser's parser reads them."""

    def __init__(self, page: Path):
        super().__init__()
        self.tags, self.attributes = [], []
        self.feed(page.read_text())

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]


def test_injected_text_reaches_the_pages_and_results_tex_as_text(injected):
    pages_written = [injected / "index.html", *sorted((injected / "runs").glob("*/index.html"))]
    assert len(pages_written) == 5
    for page in pages_written:
        markup = Markup(page)
        assert markup.tags.count("script") == 1 and "foreignobject" not in markup.tags and "image" not in markup.tags
        assert [a for a in markup.attributes if a[1].startswith("on")] == [], page
        assert [a for a in markup.attributes if "javascript:" in a[2] or "example.invalid" in a[2]] == [], page
    assert "&lt;script&gt;window.pwned=&#x27;name&#x27;&lt;/script&gt;" in pages_written[0].read_text()  # shown
    tex = (injected / "results.tex").read_text()
    # in a table cell a backslash is \textbackslash{}; a comment's line break is a space: LaTeX never reads it
    assert "\\textbackslash{}input\\{/etc/passwd\\}" in tex
    assert all(line.startswith("%") for line in tex.splitlines() if "\\input{" in line)


def test_the_pages_content_security_policy_runs_the_pages_script_and_nothing_else(tmp_path, browser):
    from selenium.webdriver.common.by import By

    page = tmp_path / "index.html"  # markup that escaped nothing: the policy alone stands in its way
    page.write_text(pages._page("policy", [payloads("raw"), "<table><thead><tr><th>a</th></tr></thead>"
                                           "<tbody><tr><td>1</td></tr></tbody></table>"]))
    errors, _ = open_page(browser, page.as_uri())
    assert browser.execute_script("return window.pwned === undefined")
    assert any("Content Security Policy" in error for error in errors)  # the browser refused it, and said so
    assert browser.find_element(By.TAG_NAME, "th").get_attribute("data-sort") == ""  # our script ran


@pytest.mark.slow
@needs_graphviz  # the run pages' graph is Graphviz's SVG, sanitised
def test_chromium_runs_no_injected_script_and_the_sanitised_graph_still_zooms_and_finds_layers(injected, browser):
    from selenium.webdriver.common.by import By

    run_pages = sorted((injected / "runs").glob("*/index.html"))
    for page in [injected / "index.html", *run_pages]:
        errors, broken = open_page(browser, page.as_uri())
        # no console error: nothing injected was even tried (the policy would have said so)
        assert errors == [] and broken == [], page
        assert browser.execute_script("return window.pwned === undefined"), page
        assert browser.execute_script("return document.scripts.length") == 1, page
        handlers = browser.execute_script(
            "return Array.from(document.querySelectorAll('*')).flatMap(e => Array.from(e.attributes))"
            ".filter(a => a.name.startsWith('on')).map(a => a.name)")
        assert handlers == [], page
        if page.parent == injected:  # the study's name, shown as the text it is
            assert payloads("name") in browser.find_element(By.TAG_NAME, "h1").text
    graph = browser.find_element(By.CSS_SELECTOR, ".graph")
    before = float(graph.get_attribute("data-scale"))
    browser.find_element(By.CSS_SELECTOR, "[data-zoom=in]").click()
    assert float(graph.get_attribute("data-scale")) == pytest.approx(before * 1.25, rel=1e-3)
    browser.find_element(By.CSS_SELECTOR, "input[type=search]").send_keys("group2_block1_conv2")
    assert browser.find_element(By.CSS_SELECTOR, ".toolbar output").text == "1 layer"
    ActionChains = pytest.importorskip("selenium.webdriver").ActionChains
    ActionChains(browser).move_to_element(browser.find_element(By.CSS_SELECTOR, "g.node")).perform()
    assert browser.execute_script("return window.pwned === undefined")


# ----------------------------------------------------------------------------------------------
# Damaged records of finished runs: named by the report and by a rerun


def test_a_damaged_model_of_a_finished_run_is_named_by_the_report_and_a_rerun(study, tmp_path):
    folder = tmp_path / "tiny-smoke"
    shutil.copytree(study, folder)
    cut, changed, *intact = sorted((folder / "runs").iterdir())
    (cut / "final.keras").write_bytes((cut / "final.keras").read_bytes()[:1000])
    data = bytearray((changed / "best.keras").read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)  # the same size, another time and content
    (changed / "best.keras").write_bytes(bytes(data))
    untouched = {run.name: (run / "history.csv").read_text() for run in (folder / "runs").iterdir()}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = tables.write_study_report(folder)
    said = [str(w.message) for w in caught]
    assert any(f"{cut}: final.keras is damaged (1,000 bytes;" in line for line in said)
    assert any(f"{changed}: best.keras is damaged (its SHA-256" in line for line in said)
    assert len([line for line in said if "damaged" in line]) == 2  # intact runs: nothing to say
    assert set(frame.loc[frame["damaged"].fillna("") != "", "run_id"]) == {cut.name, changed.name}
    assert (frame["status"] == "done").all()  # their results stand
    summary = (folder / "summary.md").read_text()
    assert "**Damaged files.**" in summary and f"`{cut.name}`: final.keras is damaged" in summary
    assert "final.keras is damaged" in (cut / "index.html").read_text()
    assert "is damaged" not in (intact[0] / "index.html").read_text()

    lines = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run_study(TINY, Options(protocol="smoke", dataset=json.loads((folder / "study.json").read_text())
                                       ["runs"][0]["run"]["dataset"]), results_dir=folder, log=lines.append) == 0
    assert any(cut.name in line and "warning:" in line and "final.keras is damaged" in line for line in lines)
    assert any(changed.name in line and "warning:" in line and "best.keras is damaged" in line for line in lines)
    assert {run.name: (run / "history.csv").read_text() for run in (folder / "runs").iterdir()} == untouched


def test_a_run_id_that_leaves_the_folder_is_refused_and_nothing_is_written_outside(study, tmp_path, capsys):
    from ablation.cli import main

    folder = tmp_path / "study" / "tiny-smoke"
    shutil.copytree(study, folder)
    (tmp_path / "outside").mkdir()
    record = json.loads((folder / "study.json").read_text())
    record["runs"][0]["run_id"] = "../../../outside"  # runs/../../../outside: tmp_path/outside
    (folder / "study.json").write_text(json.dumps(record))
    assert main(["report", str(folder)]) != 0
    err = capsys.readouterr().err
    assert "the run id '../../../outside' is not a folder name" in err and err.count("\n") == 1
    assert list((tmp_path / "outside").iterdir()) == []
