# Runs in the run's image with the host's cache mounted as HF_HOME: the real huggingface_hub
# client downloads what the cache lacks (resuming partial files) and one JSON line says the
# commit the revision resolved to and the bytes this download added to the cache.
# Arguments: repo_id revision ignore_patterns(JSON list). The token is read from the
# mounted file, never from the command line or the environment.
import json
import sys
from pathlib import Path

TOKEN_FILE = Path("/run/fleetbench/hf_token")


def cached_bytes(folder):
    """Bytes of the repository's blobs in the cache, partial (.incomplete) ones included."""
    total = 0
    for path in (folder / "blobs").glob("*"):
        try:
            total += path.lstat().st_size
        except OSError:
            continue  # removed while we looked (another client finished it)
    return total


def main(repo_id, revision, ignore):
    from huggingface_hub import constants, snapshot_download

    try:
        token = TOKEN_FILE.read_text().strip() or False
    except OSError:
        token = False
    folder = Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
    before = cached_bytes(folder)
    try:
        snapshot = snapshot_download(repo_id, revision=revision, token=token,
                                     ignore_patterns=json.loads(ignore) or None)
    except Exception as exc:  # one line, the client's own words; the token is never in them
        message = " ".join(str(exc).split())
        print(f"{type(exc).__name__}: {message}", file=sys.stderr)
        return 1
    print(json.dumps({"revision": Path(snapshot).name,
                      "downloaded_bytes": max(cached_bytes(folder) - before, 0),
                      "snapshot": snapshot}))
    return 0


sys.exit(main(*sys.argv[1:4]))
