"""config.md: root, mounts, process, hostname, annotations -- the view from inside, beside runc."""

from __future__ import annotations

from tests.conftest import requires_root
from tests.conformance.conftest import same

pytestmark = requires_root


def probe(both, script, edit=None):
    spec = both.spec(["sh", "-c", script])
    if edit is not None:
        edit(spec)
    return both.run(spec)


# ------------------------------------------------------------------ root

def test_a_readonly_root_cannot_be_written(both):
    """root.readonly: if true the root filesystem MUST be read-only inside the container."""
    def edit(s):
        s["root"]["readonly"] = True
    assert same(probe(both, "touch /x 2>/dev/null; echo $?", edit)) == (0, "1\n")


def test_a_writable_root(both):
    def edit(s):
        s["root"]["readonly"] = False
    assert same(probe(both, "touch /tmp/x && echo ok && rm /tmp/x", edit)) == (0, "ok\n")


# ------------------------------------------------------------------ mounts

def test_mounts_are_made_in_order_with_their_options(both, tmp_path):
    """mounts: the runtime MUST mount entries in the listed order; options apply."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "file").write_text("bound\n")

    def edit(s):
        s["mounts"] += [
            {"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
            {"destination": "/data/inner", "type": "bind", "source": str(src), "options": ["rbind", "ro"]},
        ]
    out = same(probe(both, "cat /data/inner/file; touch /data/inner/x 2>/dev/null || echo ro; "
                           "touch /data/y && echo tmpfs-rw; grep -c ' /data' /proc/self/mountinfo", edit))
    assert out == (0, "bound\nro\ntmpfs-rw\n2\n")


def test_the_mount_table_matches_runc(both):
    """The default mounts of a `runc spec` bundle: the same mount points, types and ro/rw."""
    # masked files are left out: see KNOWN_DIFFERENCES["test_masked_paths"]
    script = ("while read -r _ _ _ _ point opts rest; do fs=${rest#*- }; "
              "[ -d \"$point\" ] || case \"$point\" in /proc/*) continue;; esac; "
              "echo \"$point ${fs%% *} ${opts%%,*}\"; done < /proc/self/mountinfo | sort")
    results = probe(both, script)
    ours = results["sandbox"]
    assert ours.code == 0 and "/proc proc rw" in ours.out and "/dev/pts devpts rw" in ours.out
    if "runc" in results:                      # see KNOWN_DIFFERENCES
        theirs = results["runc"].out.replace("/sys/fs/cgroup tmpfs rw", "/sys/fs/cgroup tmpfs ro")
        assert (ours.code, ours.out) == (results["runc"].code, theirs)


# ------------------------------------------------------------------ process

def test_args_env_and_cwd(both):
    """process.args, process.env, process.cwd: the runtime MUST run args with env in cwd."""
    def edit(s):
        s["process"]["env"] = ["PATH=/bin:/usr/bin", "GREETING=hello world"]
        s["process"]["cwd"] = "/tmp"
        s["process"]["args"] = ["sh", "-c", 'echo "$GREETING" "$(pwd)" "$0" "$1"', "zero", "one"]
    assert same(probe(both, "", edit)) == (0, "hello world /tmp zero one\n")


def test_user_uid_gid_and_additional_gids(both):
    """process.user: the process MUST run with uid, gid and additionalGids."""
    def edit(s):
        s["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 7]}
    assert same(probe(both, "id -u; id -g; id -G", edit)) == (0, "1000\n1001\n1001 5 7\n")


def test_umask(both):
    def edit(s):
        s["process"]["user"]["umask"] = 0o077
    assert same(probe(both, "umask", edit)) == (0, "0077\n")


def test_capabilities_sets(both):
    """process.capabilities: each set MUST be what the spec lists (runc spec gives three caps)."""
    code, out = same(probe(both, "grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status"))
    # CAP_KILL (5), CAP_NET_BIND_SERVICE (10), CAP_AUDIT_WRITE (29)
    assert code == 0 and out == "".join(f"Cap{s}:\t0000000020000420\n" for s in ("Prm", "Eff", "Bnd"))


def test_an_unknown_capability_is_a_warning(both):
    """process.capabilities: a value that cannot be mapped MUST be logged as a warning; runtimes
    SHOULD NOT fail for it (runc: "ignoring unknown or unavailable capabilities")."""
    def edit(s):
        s["process"]["capabilities"]["bounding"].append("CAP_SPOONS")
    results = probe(both, "echo ran", edit)
    assert same(results) == (0, "ran\n")
    assert all("CAP_SPOONS" in r.err for r in results.values())


def test_rlimits(both):
    """process.rlimits: the runtime MUST set each with setrlimit."""
    def edit(s):
        s["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256},
                                   {"type": "RLIMIT_NPROC", "hard": 300, "soft": 200}]
    assert same(probe(both, "ulimit -n; ulimit -Hn; ulimit -u", edit)) == (0, "256\n512\n200\n")


def test_an_unknown_rlimit_is_an_error(both):
    """rlimits: the runtime MUST generate an error for a type it cannot map."""
    def edit(s):
        s["process"]["rlimits"] = [{"type": "RLIMIT_SPOONS", "hard": 1, "soft": 1}]
    results = probe(both, "true", edit)
    assert results["sandbox"].code != 0 and "RLIMIT_SPOONS" in results["sandbox"].err
    if "runc" in results:
        assert results["runc"].code != 0


def test_no_new_privileges(both):
    def edit(s):
        s["process"]["noNewPrivileges"] = True
    assert same(probe(both, "grep NoNewPrivs /proc/self/status", edit)) == (0, "NoNewPrivs:\t1\n")


def test_oom_score_adj(both):
    def edit(s):
        s["process"]["oomScoreAdj"] = 123
    assert same(probe(both, "cat /proc/self/oom_score_adj", edit)) == (0, "123\n")


def test_a_missing_executable_is_an_error(both):
    """process.args[0] not found: start/run MUST fail (runc exits non-zero with the name)."""
    results = both.run(both.spec(["/no/such/program"]))
    assert results["sandbox"].code != 0 and "/no/such/program" in results["sandbox"].err
    if "runc" in results:
        assert results["runc"].code != 0


# ------------------------------------------------------------------ hostname, annotations

def test_hostname(both):
    """hostname: the runtime MUST set it in the container's UTS namespace."""
    def edit(s):
        s["hostname"] = "conformance"
    assert same(probe(both, "hostname", edit)) == (0, "conformance\n")


def test_unknown_annotations_are_ignored(both):
    """annotations: a runtime MUST NOT fail on an annotation it does not know."""
    def edit(s):
        s["annotations"] = {"org.example.unknown": "x", "com.example.other": "y"}
    assert same(probe(both, "echo ok", edit)) == (0, "ok\n")


def test_unknown_top_level_properties_are_ignored(both):
    """Extensibility: runtimes MUST ignore properties they do not know (config.md, "Extensibility")."""
    def edit(s):
        s["org.example.extension"] = {"a": 1}
    assert same(probe(both, "echo ok", edit)) == (0, "ok\n")
