"""Checks that huggingface_hub reads the cache `kto pull` writes, and that it writes the same cache.

Starts the stand-in Hub of the C++ tests (tests/export/hub_server.h, served by the test binary's
disabled HubServe test), then against it:
  1. `kto pull kto-test/tiny` into cache A;
  2. huggingface_hub's own `snapshot_download` into cache B (HF_ENDPOINT pointed at the server);
  3. `scan_cache_dir` on A and B: the same repo, type, revision, refs, files and sizes, no warnings;
     `snapshot_download(local_files_only=True)` and `try_to_load_from_cache` find A's files;
  4. A and B listed folder by folder, file by file (size, sha256) and link by link: equal.
With --write-fixture, B's listing goes to tests/fixtures/hub/snapshot_download_tree.json, which the
C++ test HubReference.CacheEqualsWhatSnapshotDownloadWrote compares a fresh kto pull with.
Exits 1 on any difference.

Run from the repository root after building:
  /work/venv/bin/python tools/reference/check_hub_cache.py [--build build-hub] [--write-fixture]
(needs `pip install huggingface_hub`)
"""
import argparse
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "hub" / "snapshot_download_tree.json"
REPO = "kto-test/tiny"


def list_cache(root):
    """Every entry under root, sorted by path: dirs, files (size, sha256), links (target)."""
    root = pathlib.Path(root)
    out = []
    for p in sorted(root.rglob("*"), key=lambda q: q.relative_to(root).as_posix()):
        e = {"path": p.relative_to(root).as_posix()}
        if p.is_symlink():
            e.update(type="link", target=os.readlink(p))
        elif p.is_dir():
            e.update(type="dir")
        else:
            data = p.read_bytes()
            e.update(type="file", size=len(data), sha256=hashlib.sha256(data).hexdigest())
        out.append(e)
    return out


def describe(info, root):
    """What scan_cache_dir says about the one repo in a cache, with paths made relative."""
    assert len(info.repos) == 1, f"{root}: expected one repo, scanner found {len(info.repos)}"
    repo = next(iter(info.repos))
    revs = []
    for rev in sorted(repo.revisions, key=lambda r: r.commit_hash):
        files = sorted((f.file_path.relative_to(rev.snapshot_path).as_posix(), f.size_on_disk,
                        f.blob_path.relative_to(repo.repo_path).as_posix()) for f in rev.files)
        revs.append({"commit": rev.commit_hash, "refs": sorted(rev.refs), "files": files, "size": rev.size_on_disk})
    return {"repo_id": repo.repo_id, "repo_type": repo.repo_type, "nb_files": repo.nb_files,
            "size_on_disk": repo.size_on_disk, "revisions": revs,
            "warnings": [str(w) for w in info.warnings]}


def start_server(binary):
    proc = subprocess.Popen([str(binary), "--gtest_filter=HubServe.DISABLED_ForReference", "--gtest_also_run_disabled_tests"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("KTO_HUB_ENDPOINT="):
            return proc, line.strip().split("=", 1)[1]
    raise SystemExit("the stand-in hub did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--kto", help="the kto binary (default BUILD/kto)")
    ap.add_argument("--test-binary", help="the test_export binary (default BUILD/tests/test_export)")
    ap.add_argument("--write-fixture", action="store_true")
    args = ap.parse_args()
    proc, endpoint = start_server(args.test_binary or str(ROOT / args.build / "tests" / "test_export"))
    ok = True
    try:
        tmp = pathlib.Path(tempfile.mkdtemp(prefix="kto-hub-check-"))
        ours, theirs = tmp / "ours", tmp / "theirs"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=endpoint, HF_HUB_CACHE=str(ours))
        subprocess.run([args.kto or str(ROOT / args.build / "kto"), "pull", REPO], check=True, env=env)

        os.environ["HF_ENDPOINT"] = endpoint  # read when huggingface_hub is imported
        os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
        os.environ.pop("HF_TOKEN", None)
        import huggingface_hub
        from huggingface_hub import scan_cache_dir, snapshot_download, try_to_load_from_cache

        snapshot_download(REPO, cache_dir=str(theirs))
        a, b = describe(scan_cache_dir(ours), ours), describe(scan_cache_dir(theirs), theirs)
        print(f"huggingface_hub {huggingface_hub.__version__} scan_cache_dir of kto's cache:")
        print(json.dumps(a, indent=1))
        if a != b:
            ok = False
            print("DIFFERENT from the scan of snapshot_download's cache:\n" + json.dumps(b, indent=1))
        if a["warnings"]:
            ok = False
            print("scanner warnings on kto's cache:", a["warnings"])
        local = snapshot_download(REPO, cache_dir=str(ours), local_files_only=True)
        commit = a["revisions"][0]["commit"]
        if pathlib.Path(local) != ours / "models--kto-test--tiny" / "snapshots" / commit:
            ok = False
            print("snapshot_download(local_files_only=True) on kto's cache returned", local)
        for name in ("config.json", "tokenizer/tokenizer_config.json", "model.safetensors"):
            hit = try_to_load_from_cache(REPO, name, cache_dir=str(ours))
            if not isinstance(hit, str) or not os.path.isfile(hit):
                ok = False
                print("try_to_load_from_cache did not find", name, "->", hit)

        la, lb = list_cache(ours), list_cache(theirs)
        if la != lb:
            ok = False
            pa, pb = {e["path"]: e for e in la}, {e["path"]: e for e in lb}
            for path in sorted(set(pa) | set(pb)):
                if pa.get(path) != pb.get(path):
                    print(f"tree differs at {path}:\n  kto:             {pa.get(path)}\n  huggingface_hub: {pb.get(path)}")
        else:
            print(f"cache trees identical: {len(la)} entries (folders, files with sha256, link targets)")
        if args.write_fixture:
            FIXTURE.parent.mkdir(parents=True, exist_ok=True)
            FIXTURE.write_text(json.dumps({"huggingface_hub": huggingface_hub.__version__, "repo": REPO,
                                           "made_by": "tools/reference/check_hub_cache.py (snapshot_download)", "tree": lb},
                                          indent=1) + "\n")
            print("wrote", FIXTURE.relative_to(ROOT))
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
