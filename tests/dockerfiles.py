"""A corpus of Dockerfiles, valid and invalid, with what each must give.

Used twice: ``tests/unit/test_dockerfile_corpus.py`` parses every entry and
checks the syntax errors (file:line and message) without an engine;
``tests/integration/test_build_corpus.py`` builds every entry on a real store
with busybox and checks the image config, what the image's container prints,
or the build error.

``Case.expect`` is one of:

* ``Ok(config={...}, output=...)``: the build succeeds; ``config`` is a subset
  of the image's config; ``output`` what ``run`` of the image prints;
* ``Syntax(line, text)``: DockerfileSyntaxError at parse time, at that line
  (None: no line), its message containing ``text``;
* ``Fails(line, text, cls="BuildError")``: the build fails with that error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Ok:
    config: dict[str, Any] = field(default_factory=dict)
    output: str | None = None
    command: list[str] | None = None
    layers: int | None = None          #: layers added on top of busybox's one


@dataclass
class Syntax:
    line: int | None
    text: str
    at_build: bool = False     #: found while building (needs the variables), not by the parser


@dataclass
class Fails:
    line: int | None
    text: str
    cls: str = "BuildError"


@dataclass
class Case:
    name: str
    text: str
    expect: Ok | Syntax | Fails
    files: dict[str, str] = field(default_factory=dict)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None


B = "FROM busybox\n"

CASES = [
    # ------------------------------------------------------------------ invalid: parse time
    Case("empty", "", Syntax(None, "no instructions")),
    Case("only-comments", "# nothing\n   # here\n\n", Syntax(None, "no instructions")),
    Case("unknown-instruction", B + "RUNN echo hi\n", Syntax(2, "unknown instruction: RUNN")),
    Case("env-no-value", B + "ENV PATH\n", Syntax(2, "a value is missing")),
    Case("cmd-bad-json", B + 'CMD ["echo", "hi"\n', Syntax(2, "not valid JSON")),
    Case("cmd-single-quotes", B + "CMD ['echo', 'hi']\n", Syntax(2, "not valid JSON")),
    Case("cmd-json-not-strings", B + 'CMD ["sleep", 10]\n', Syntax(2, "list of strings")),
    Case("unterminated-heredoc", B + "RUN <<EOF\necho hi\n", Syntax(2, "unterminated heredoc")),
    Case("before-from", "RUN echo hi\n" + B, Syntax(1, "before FROM")),
    Case("copy-from-cycle", "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n",
         Syntax(4, "circular dependency")),
    Case("copy-from-itself", "FROM busybox AS a\nCOPY --from=a /x /y\n", Syntax(2, "itself")),
    Case("duplicate-stage", "FROM busybox AS a\nFROM busybox AS A\n", Syntax(2, "duplicate stage name")),
    Case("bad-stage-name", "FROM busybox AS 1abc\n", Syntax(1, "invalid stage name")),
    Case("unknown-flag", B + "COPY --foo=bar a /b\n", Syntax(2, "unknown flag: --foo")),
    Case("flag-on-env", B + "ENV --x=1 A=1\n", Syntax(2, "unknown flag: --x")),
    Case("shell-not-json", B + "SHELL /bin/sh -c\n", Syntax(2, "JSON form")),
    Case("bad-escape-directive", "# escape=x\n" + B, Syntax(1, "invalid escape")),
    Case("duplicate-directive", "# escape=`\n# escape=\\\n" + B, Syntax(2, "only one escape")),
    Case("from-too-many-words", "FROM busybox extra\n", Syntax(1, "expected FROM IMAGE")),
    Case("from-empty", "FROM\n", Syntax(1, "FROM requires an image")),
    Case("onbuild-from", B + "ONBUILD FROM busybox\n", Syntax(2, "isn't allowed")),
    Case("healthcheck-no-cmd", B + "HEALTHCHECK echo hi\n", Syntax(2, "NONE or CMD")),
    Case("copy-one-arg", B + "COPY a\n", Syntax(2, "at least two arguments")),
    Case("env-missing-equals", B + "ENV A=1 B\n", Syntax(2, "can't find =")),
    Case("arg-bad-name", B + "ARG 1X=2\n", Syntax(2, "not a valid argument name")),
    Case("user-two-words", B + "USER a b\n", Syntax(2, "exactly one argument")),
    Case("cmd-empty", B + "CMD\n", Syntax(2, "at least one argument")),
    Case("copy-bad-chmod", B + "COPY --chmod=rwx a /b\n", Syntax(2, "octal mode")),
    Case("duplicate-flag", B + "COPY --chown=1 --chown=2 a /b\n", Syntax(2, "duplicate flag")),
    # ------------------------------------------------------------------ invalid: build time
    Case("bad-substitution", B + "ENV A=${B\n", Syntax(2, "missing '}'", at_build=True)),
    Case("required-arg", B + "ARG NEED\nENV X=\"${NEED:?give --build-arg NEED}\"\n", Syntax(3, "give --build-arg NEED", at_build=True)),
    Case("missing-image", "FROM no-such-image:1\n", Fails(1, "no such image")),
    Case("missing-target", B + "RUN true\n", Fails(None, "failed to reach build target nope"), target="nope"),
    Case("copy-outside", B + "COPY ../outside /x\n", Fails(2, "outside the build context")),
    Case("copy-missing", B + "COPY nothere.txt /x\n", Fails(2, "file not found")),
    Case("copy-glob-nothing", B + "COPY *.nope /x/\n", Fails(2, "no source files")),
    Case("copy-many-no-slash", B + "COPY a.txt b.txt /dest\n", Fails(2, "end with a /"),
         files={"a.txt": "a", "b.txt": "b"}),
    Case("run-fails", B + "RUN echo before; exit 3\n", Fails(2, "returned a non-zero code: 3")),
    Case("copy-from-unknown", B + "COPY --from=nowhere /a /b\n", Fails(2, "no stage and no local image")),
    Case("run-in-scratch", "FROM scratch\nRUN echo hi\n", Fails(2, "could not start")),
    Case("stopsignal-bogus", B + "STOPSIGNAL SIGNOPE\n", Syntax(2, "invalid signal", at_build=True)),
    Case("run-network-bridge", B + "RUN --network=bridge true\n", Syntax(2, "only choose default, none or host", at_build=True)),
    Case("add-url-offline", B + "ADD http://127.0.0.1:9/file.txt /x\n", Fails(2, "cannot download")),
    Case("platform-other", "FROM --platform=linux/s390x busybox\n", Fails(1, "is not available")),
    # ------------------------------------------------------------------ valid
    Case("seed-greeting", B + "RUN echo hello > /greeting\nENV A=1\nRUN ls / > /listing\n"
         'CMD ["cat","/greeting"]\n', Ok({"Cmd": ["cat", "/greeting"]}, output="hello\n", layers=2)),
    Case("continuations", B + "RUN echo a > /ab \\\n# a comment inside\n\n    && echo b >> /ab \\\n  && true\n"
         'CMD ["cat", "/ab"]\n', Ok(output="a\nb\n")),
    Case("escape-backtick", "# escape=`\n" + B + "RUN echo one `\n    two > /t\nCMD cat /t\n",
         Ok({"Cmd": ["/bin/sh", "-c", "cat /t"]}, output="one two\n")),
    Case("lowercase-instructions", "from busybox\nenv A=1\ncmd echo $A\n", Ok(output="1\n")),
    Case("env-forms", B + 'ENV A=1 B="two words" C=${A}x\nENV D ${B:+set} ${X:-dflt}\n'
         "ENV E=$A F=\\$A G='$A'\n",
         Ok({"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1",
                     "B=two words", "C=x", "D=set dflt", "E=1", "F=$A", "G=$A"]})),
    Case("env-same-line", B + "ENV A=old\nENV A=new B=$A\n", Ok({"Env": [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=new", "B=old"]})),
    Case("arg-scoping", "ARG BASE=busybox\nARG V=1\nFROM $BASE\nRUN echo \"[$V]\" > /v\nARG V\n"
         "RUN echo \"[$V]\" >> /v\nARG W=dflt\nCMD cat /v; echo $W\n",
         Ok(output="[]\n[2]\n\n"), build_args={"V": "2"}),
    Case("arg-default-and-env", B + "ARG A=fromarg\nENV A=fromenv\nRUN echo $A > /a\nCMD cat /a\n",
         Ok(output="fromenv\n")),
    Case("entrypoint-exec-cmd-exec", B + 'ENTRYPOINT ["echo", "e"]\nCMD ["c"]\n', Ok(output="e c\n")),
    Case("entrypoint-exec-cmd-shell", B + 'ENTRYPOINT ["echo", "e"]\nCMD c1\n',
         Ok({"Cmd": ["/bin/sh", "-c", "c1"]}, output="e /bin/sh -c c1\n")),
    Case("entrypoint-shell-ignores-cmd", B + "ENTRYPOINT echo e\nCMD [\"c\"]\n", Ok(output="e\n")),
    Case("entrypoint-resets-inherited-cmd", B + 'ENTRYPOINT ["echo", "only"]\n',
         Ok({"Cmd": None}, output="only\n")),
    Case("cmd-then-entrypoint-keeps-cmd", B + 'CMD ["kept"]\nENTRYPOINT ["echo"]\n', Ok(output="kept\n")),
    Case("heredoc-run", B + "RUN <<EOF\necho line1 > /h\necho line2 >> /h\nEOF\nCMD cat /h\n",
         Ok(output="line1\nline2\n")),
    Case("heredoc-run-cat", B + "ARG X=5\nRUN cat > /h <<-EOT\n\tx=$X\n\tEOT\nCMD cat /h\n", Ok(output="x=5\n")),
    Case("heredoc-copy", B + "ENV WHO=world\nCOPY <<EOF /hello.txt\nhello $WHO\nEOF\n"
         "COPY <<'EOF' /raw.txt\nhello $WHO\nEOF\nCMD cat /hello.txt /raw.txt\n",
         Ok(output="hello world\nhello $WHO\n")),
    Case("workdir-chain", B + "WORKDIR /a\nWORKDIR b\nWORKDIR ../c\nCMD pwd\n",
         Ok({"WorkingDir": "/a/c"}, output="/a/c\n")),
    Case("copy-rules", B + "COPY dir /d1\nCOPY dir /d2/\nCOPY f.txt /newname\nCOPY f.txt /d3/\n"
         "WORKDIR /w\nCOPY f.txt .\nCOPY *.txt /glob/\n"
         'CMD ["sh", "-c", "ls /d1 /d2 /d3 /glob; cat /newname /w/f.txt"]\n',
         Ok(output="/d1:\nx\n\n/d2:\nx\n\n/d3:\nf.txt\n\n/glob:\nf.txt\ng.txt\nF\nF\n"),
         files={"dir/x": "x", "f.txt": "F\n", "g.txt": "G\n"}),
    Case("copy-chown-chmod", B + "COPY --chown=1000:2000 --chmod=640 f.txt /f\n"
         'CMD ["stat", "-c", "%u %g %a", "/f"]\n', Ok(output="1000 2000 640\n"), files={"f.txt": "F"}),
    Case("dockerignore", B + "COPY . /ctx/\nCMD find /ctx -type f | sort\n",
         Ok(output="/ctx/keep.md\n/ctx/src/a.py\n"),
         files={".dockerignore": "*.md\n!keep.md\n**/*.pyc\n.dockerignore\nDockerfile\n",
                "keep.md": "k", "drop.md": "d", "src/a.py": "a", "src/a.pyc": "c"}),
    Case("metadata", B + "LABEL a=1 \"b c\"=\"2 3\"\nEXPOSE 80 53/udp\nVOLUME /data\nUSER nobody\n"
         "STOPSIGNAL SIGINT\nHEALTHCHECK --interval=5s --retries=2 CMD true\nONBUILD RUN echo child\n"
         "MAINTAINER someone\n",
         Ok({"Labels": {"a": "1", "b c": "2 3"}, "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
             "Volumes": {"/data": {}}, "User": "nobody", "StopSignal": "SIGINT",
             "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 2},
             "OnBuild": ["RUN echo child"]})),
    Case("shell-instruction", B + 'SHELL ["/bin/sh", "-xc"]\nRUN echo hi\nCMD echo there\n',
         Ok({"Cmd": ["/bin/sh", "-xc", "echo there"]})),
    Case("multi-stage", "FROM busybox AS builder\nRUN echo built > /artifact\nFROM scratch\n"
         "COPY --from=builder /artifact /artifact\nCOPY --from=busybox /bin/busybox /bin/cat\n"
         'CMD ["/bin/cat", "/artifact"]\n', Ok(output="built\n")),
    Case("multi-stage-index-and-target", "FROM busybox\nRUN echo zero > /z\nFROM busybox AS second\n"
         "COPY --from=0 /z /z\nCMD cat /z\nFROM second\nRUN false\n",
         Ok(output="zero\n"), target="second"),
    Case("scratch-copy", "FROM scratch\nCOPY f.txt /\n", Ok({"Env": [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}), files={"f.txt": "x"}),
    Case("run-exec-form", B + 'RUN ["sh", "-c", "echo exec > /e"]\nCMD cat /e\n', Ok(output="exec\n")),
    # the seed slides' examples, adapted to busybox
    Case("seed-hello", B + 'CMD echo "Hello world"\n', Ok(output="Hello world\n")),
    Case("seed-redis-like", B + "RUN mkdir -p /usr/bin && printf '#!/bin/sh\\necho ready on port 6379\\n' > /usr/bin/redis-server "
         "&& chmod +x /usr/bin/redis-server\nEXPOSE 6379\nENTRYPOINT [\"/usr/bin/redis-server\"]\n",
         Ok({"ExposedPorts": {"6379/tcp": {}}, "Entrypoint": ["/usr/bin/redis-server"]},
            output="ready on port 6379\n")),
    Case("seed-app", B + "COPY . /app\nRUN sh /app/make.sh\nCMD sh /app/app.sh\n", Ok(output="built\n"),
         files={"make.sh": "echo built > /app/built\n", "app.sh": "cat /app/built\n"}),
    Case("proxy-args", B + "RUN echo $http_proxy > /p\nCMD cat /p\n", Ok(output="http://proxy:3128\n"),
         build_args={"http_proxy": "http://proxy:3128"}),
    Case("platform-host", "FROM --platform=$BUILDPLATFORM busybox\nARG TARGETARCH\n"
         "RUN echo $TARGETARCH > /arch\nCMD cat /arch\n", Ok(output=None)),
    Case("run-mount-bind-and-cache", B + "RUN --mount=type=bind,source=src,target=/src "
         "--mount=type=cache,target=/cache cp /src/a.txt /copied && echo $(ls /src) > /listing "
         "&& echo kept >> /cache/log\nRUN --mount=type=cache,target=/cache cat /cache/log > /from-cache\n"
         "CMD cat /copied /listing /from-cache; ls -d /src /cache 2>/dev/null | wc -l\n",
         Ok(output="A\na.txt\nkept\n0\n", layers=2),
         files={"src/a.txt": "A\n", "src/.hidden~": "ignored", ".dockerignore": "**/*~\n"}),
    Case("run-mount-from-stage", "FROM busybox AS tools\nRUN echo tool > /tool\nFROM busybox\n"
         "RUN --mount=from=tools,source=/tool,target=/mnt/tool cat /mnt/tool > /used\nCMD cat /used\n",
         Ok(output="tool\n")),
    Case("run-mount-bad-type", B + "RUN --mount=type=tmpfs,target=/t true\n", Syntax(2, "not supported",
                                                                                    at_build=True)),
    Case("run-no-change-no-layer", B + "RUN true\nRUN echo x > /x\n", Ok(layers=1)),
]
