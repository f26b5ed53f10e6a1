"""docker create/run flags and docker-py keywords -> Config/HostConfig (no root needed)."""

from __future__ import annotations

import pytest

from sandbox.cli import Parser
from sandbox.containers import options
from sandbox.errors import UsageError


def parse(*argv):
    p = Parser(prog="sandbox run", add_help=False)
    options.add_create_flags(p)
    p.add_argument("image")
    p.add_argument("command", nargs="...")
    args = p.parse_args(list(argv))
    return options.config_from_args(args, args.image, list(args.command))[:3]


def parse_networking(*argv):
    p = Parser(prog="sandbox run", add_help=False)
    options.add_create_flags(p)
    p.add_argument("image")
    p.add_argument("command", nargs="...")
    args = p.parse_args(list(argv))
    return options.config_from_args(args, args.image, list(args.command))


def test_network_flags():
    config, host, _, net = parse_networking("--network", "lab", "--ip", "10.30.0.9", "--network-alias", "web",
                                            "--network-alias", "www", "--mac-address", "02:42:0A:1E:00:09",
                                            "-p", "127.0.0.1:8000-8001:80-81", "-P", "--expose", "443",
                                            "--dns", "192.0.2.53", "--dns-option", "ndots:1", "busybox")
    assert host["NetworkMode"] == "lab" and host["PublishAllPorts"] is True
    assert host["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8000"}],
                                    "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8001"}]}
    assert set(config["ExposedPorts"]) == {"80/tcp", "81/tcp", "443/tcp"}
    assert config["MacAddress"] == "02:42:0a:1e:00:09"
    assert host["Dns"] == ["192.0.2.53"] and host["DnsOptions"] == ["ndots:1"]
    assert net == {"EndpointsConfig": {"lab": {"Aliases": ["web", "www"],
                                               "IPAMConfig": {"IPv4Address": "10.30.0.9"}}}}
    # no network flags: no NetworkingConfig, and the default network is Docker's ("default" -> bridge)
    _, host, _, net = parse_networking("busybox")
    assert net == {} and host["NetworkMode"] == "default"
    with pytest.raises(UsageError, match="invalid --network"):
        parse_networking("--network", "a b", "busybox")


@pytest.mark.parametrize("text,value", [("32m", 32 << 20), ("1g", 1 << 30), ("512k", 512 << 10),
                                        ("100b", 100), ("1.5g", int(1.5 * (1 << 30))), ("4096", 4096)])
def test_sizes(text, value):
    assert options.parse_bytes(text, "-m") == value


def test_bad_size_names_the_flag_and_the_fix():
    with pytest.raises(UsageError) as e:
        options.parse_bytes("12QB", "-m, --memory")
    assert '"12QB"' in str(e.value) and "-m, --memory" in str(e.value) and e.value.hint


@pytest.mark.parametrize("text,ns", [("30s", 30 * 10**9), ("1m30s", 90 * 10**9), ("500ms", 5 * 10**8), ("2h", 7200 * 10**9)])
def test_durations(text, ns):
    assert options.parse_duration(text, "--health-interval") == ns


def test_restart_ulimit_device_port():
    assert options.parse_restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    with pytest.raises(UsageError):
        options.parse_restart("always:3")
    assert options.parse_ulimit("nofile=1024:2048") == {"Name": "nofile", "Soft": 1024, "Hard": 2048}
    with pytest.raises(UsageError):
        options.parse_ulimit("nofile=4096:1024")
    assert options.parse_device("/dev/fuse") == {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse",
                                                 "CgroupPermissions": "rwm"}
    assert options.parse_port("127.0.0.1:8080:80/udp") == ("80/udp", [{"HostIp": "127.0.0.1", "HostPort": "8080"}])


def test_volumes_and_mounts():
    assert options.parse_volume("/h:/c:ro") == ("/h:/c:ro", None)
    assert options.parse_volume("data:/c") == ("data:/c", None)
    assert options.parse_volume("/anon") == (None, "/anon")
    with pytest.raises(UsageError):
        options.parse_volume("bad name:/c")
    m = options.parse_mount("type=tmpfs,target=/t,tmpfs-size=1m")
    assert m == {"Type": "tmpfs", "Source": "", "Target": "/t", "ReadOnly": False,
                 "TmpfsOptions": {"SizeBytes": 1 << 20}}


def test_a_realistic_command_line():
    config, host, name = parse("--name", "web", "-e", "A=1", "-m", "64m", "--memory-swap", "-1",
                               "--cpus", "0.5", "--pids-limit", "10", "--cap-add", "net_admin",
                               "--restart", "on-failure:2", "-l", "lab=1", "-v", "/tmp:/h:ro",
                               "--health-cmd", "true", "busybox", "sleep", "5")
    assert name == "web" and config["Cmd"] == ["sleep", "5"] and config["Env"] == ["A=1"]
    assert host["Memory"] == 64 << 20 and host["MemorySwap"] == -1 and host["NanoCpus"] == 5 * 10**8
    assert host["PidsLimit"] == 10 and host["CapAdd"] == ["CAP_NET_ADMIN"]
    assert host["RestartPolicy"]["MaximumRetryCount"] == 2 and config["Labels"] == {"lab": "1"}
    assert host["Binds"] == ["/tmp:/h:ro"] and config["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]


def test_cli_and_kwargs_agree():
    cli = parse("-e", "A=1", "-m", "32m", "--pids-limit", "5", "busybox", "true")
    api = options.config_from_kwargs("busybox", ["true"], environment={"A": "1"}, mem_limit="32m",
                                     pids_limit=5, auto_remove=False)
    assert cli[0]["Env"] == api[0]["Env"] and cli[1]["Memory"] == api[1]["Memory"]
    assert cli[1]["PidsLimit"] == api[1]["PidsLimit"]


@pytest.mark.parametrize("kwargs", [{"cap_add": ["CAP_FOO"]}, {"name": "bad name"}, {"runtime": "kata"},
                                    {"memswap_limit": "16m", "mem_limit": "32m"}, {"no_such": 1},
                                    {"restart_policy": "always", "auto_remove": True}])
def test_bad_kwargs_are_refused(kwargs):
    with pytest.raises(UsageError):
        options.config_from_kwargs("busybox", ["true"], **kwargs)


def test_env_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FROM_HOST", "h")
    f = tmp_path / "env"
    f.write_text("# comment\nA=1\n\nFROM_HOST\nMISSING\n")
    assert options.parse_env_file(str(f)) == ["A=1", "FROM_HOST=h"]
