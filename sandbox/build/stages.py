"""From instructions to stages: what each instruction's arguments mean, checked up front.

A build fails early and cheaply when the Dockerfile is wrong: before the first
RUN starts, every instruction's shape is checked here (arity, exec form,
flags, stage names, ``COPY --from`` targets and their cycles), so a typo on
line 40 is not found after a long RUN on line 3.  What needs the build's
variables (``$VAR`` in COPY or ENV) is expanded later, by the builder.
"""

from __future__ import annotations

import re

from .parser import Dockerfile, Instruction, json_form, parse, split_words
from ..plain import Record

#: Flags each instruction accepts (Docker's; anything else is an error).
FLAGS = {
    "FROM": {"platform"},
    "RUN": {"network", "mount", "security"},
    "COPY": {"from", "chown", "chmod", "link", "parents", "exclude"},
    "ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}

#: Build arguments every build knows without an ARG line (kept out of history).
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")

_STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9._-]*$")


class Stage(Record):
    """One ``FROM`` and the instructions up to the next."""
    _fields = ("index", "base", "name", "platform", "line", "from_ins", "instructions")

    def __init__(self, index: int, base: str, name: str | None, platform: str | None, line: int,
                 from_ins: Instruction, instructions: list[Instruction] | None = None) -> None:
        self.index = index
        self.base = base                #: as written (may hold $VARS of global ARGs)
        self.name = name                #: lower case
        self.platform = platform
        self.line = line
        self.from_ins = from_ins
        self.instructions: list[Instruction] = [] if instructions is None else instructions

    @property
    def label(self) -> str:
        return self.name or str(self.index)


class Plan(Record):
    """A Dockerfile as stages: the ARGs before the first FROM, then each stage."""
    _fields = ("dockerfile", "global_args", "stages")

    def __init__(self, dockerfile: Dockerfile, global_args: list[Instruction], stages: list[Stage]) -> None:
        self.dockerfile = dockerfile
        self.global_args = global_args
        self.stages = stages

    @property
    def filename(self) -> str:
        return self.dockerfile.filename

    def stage(self, ref: str) -> Stage | None:
        """A stage by name (case-insensitive) or by index."""
        low = ref.lower()
        for s in self.stages:
            if s.name == low:
                return s
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None


def name_values(ins: Instruction, escape: str = "\\") -> list[tuple[str, str]]:
    """ENV and LABEL arguments: ``K=V ...`` or the legacy ``K V`` (the value is the rest)."""
    words = split_words(ins.rest, escape)
    if not words:
        raise ins.error(f"{ins.keyword} requires at least one argument",
                        hint=f"e.g. {ins.keyword} NAME=value")
    if "=" not in words[0]:
        parts = re.split(r"\s+", ins.rest.strip(), maxsplit=1)
        if len(parts) < 2 or not parts[1].strip():
            raise ins.error(f"{ins.keyword} {ins.rest.strip()}: a value is missing "
                            f"({ins.keyword} must have two arguments)",
                            hint=f"write {ins.keyword} {parts[0]}=value (use \"\" for an empty value)")
        return [(parts[0], parts[1].strip())]
    out = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            raise ins.error(f"{ins.keyword}: can't find = in {word!r}; it must be of the form name=value",
                            hint=f'quote values with spaces: {ins.keyword} A="two words"')
        if not key:
            raise ins.error(f"{ins.keyword}: {word!r} has no name before the =")
        out.append((key, value))
    return out


def arg_decls(ins: Instruction, escape: str = "\\") -> list[tuple[str, str | None]]:
    """``ARG NAME[=default] ...``"""
    words = split_words(ins.rest, escape)
    if not words:
        raise ins.error("ARG requires at least one argument", hint="e.g. ARG VERSION=1.0")
    out: list[tuple[str, str | None]] = []
    for word in words:
        key, eq, value = word.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ins.error(f"ARG {word}: {key!r} is not a valid argument name",
                            hint="names are letters, digits and _, not starting with a digit")
        out.append((key, value if eq else None))
    return out


def copy_args(ins: Instruction) -> tuple[list[str], str]:
    """COPY/ADD ``sources..., dest`` (exec form or whitespace-separated, unexpanded)."""
    exec_form = ins.exec_form()
    words = exec_form if exec_form is not None else ins.rest.split()
    if len(words) < 2:
        raise ins.error(f"{ins.keyword} requires at least two arguments: a source and a destination",
                        hint=f"e.g. {ins.keyword} app.py /app/")
    return words[:-1], words[-1]


def validate(ins: Instruction, escape: str = "\\") -> None:
    """Check one instruction's shape; raises DockerfileSyntaxError with its line."""
    kw = ins.keyword
    allowed = FLAGS.get(kw, set())
    for flag in ins.flags:
        if flag not in allowed:
            hint = ("flags go right after the keyword; " + kw + " takes " +
                    ", ".join("--" + f for f in sorted(allowed))) if allowed else f"{kw} takes no flags"
            raise ins.error(f"{kw}: unknown flag: --{flag}", hint=hint)
    rest = ins.rest.strip()
    if kw in ("CMD", "ENTRYPOINT", "RUN") and not rest and not ins.heredocs:
        raise ins.error(f"{kw} requires at least one argument", hint=f"e.g. {kw} [\"echo\", \"hi\"]")
    if kw in ("CMD", "ENTRYPOINT", "RUN", "VOLUME"):
        ins.exec_form()
    elif kw in ("ENV", "LABEL"):
        name_values(ins, escape)
    elif kw == "ARG":
        arg_decls(ins, escape)
    elif kw in ("COPY", "ADD"):
        copy_args(ins)
        if ins.flags.get("chmod") is not None and not re.fullmatch(r"[0-7]{3,4}|\$.*", ins.flags["chmod"] or ""):
            raise ins.error(f"{kw} --chmod={ins.flags['chmod']}: expected an octal mode such as 755 or 0644")
        if kw == "COPY" and "from" in ins.flags and not ins.flags["from"]:
            raise ins.error("COPY --from needs a stage name, a stage number or an image",
                            hint="e.g. COPY --from=builder /out/app /usr/local/bin/")
    elif kw == "SHELL":
        form = ins.exec_form()
        if form is None or not form:
            raise ins.error("SHELL requires the arguments to be in JSON form",
                            hint='e.g. SHELL ["/bin/sh", "-ec"]')
    elif kw in ("WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER", "EXPOSE", "VOLUME"):
        if not rest:
            raise ins.error(f"{kw} requires at least one argument")
        if kw in ("USER", "STOPSIGNAL") and len(rest.split()) > 1:
            raise ins.error(f"{kw} requires exactly one argument", hint=f"e.g. {kw} " +
                            ("nobody" if kw == "USER" else "SIGTERM"))
    elif kw == "HEALTHCHECK":
        first = rest.split(None, 1)[0].upper() if rest else ""
        if first == "NONE":
            if len(rest.split()) > 1 or ins.flags:
                raise ins.error("HEALTHCHECK NONE takes no other arguments or flags")
        elif first != "CMD" or len(rest.split(None, 1)) < 2:
            raise ins.error("HEALTHCHECK must be NONE or CMD followed by a command",
                            hint="e.g. HEALTHCHECK --interval=5s CMD wget -q -O- localhost || exit 1")
        else:
            json_form(rest.split(None, 1)[1], ins)
    elif kw == "ONBUILD":
        if not rest:
            raise ins.error("ONBUILD requires an instruction", hint="e.g. ONBUILD COPY . /app")
        trigger = onbuild_instruction(ins)
        if trigger.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            raise ins.error(f"ONBUILD {trigger.keyword}: {trigger.keyword} isn't allowed as an ONBUILD trigger")
        validate(trigger, escape)
    elif kw == "FROM":
        words = rest.split()
        if not words:
            raise ins.error("FROM requires an image: FROM busybox, or FROM scratch for an empty one")
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise ins.error(f"FROM {rest}: expected FROM IMAGE or FROM IMAGE AS NAME")


def onbuild_instruction(ins: Instruction) -> Instruction:
    """The trigger inside ``ONBUILD RUN ...`` as an instruction on the same line."""
    inner = parse(ins.rest.strip(), ins.filename).instructions
    if len(inner) != 1:
        raise ins.error("ONBUILD requires exactly one instruction")
    trigger = inner[0]
    trigger.line = trigger.end_line = ins.line
    return trigger


def plan(df: Dockerfile) -> Plan:
    """Group instructions into stages and check them; raises DockerfileSyntaxError."""
    if not df.instructions:
        from ..errors import DockerfileSyntaxError
        raise DockerfileSyntaxError("the Dockerfile has no instructions (it is empty or only comments)",
                                    filename=df.filename, line=None,
                                    hint="start it with FROM, e.g. FROM busybox")
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    for ins in df.instructions:
        validate(ins, df.escape)
        if ins.keyword == "FROM":
            words = ins.rest.split()
            name = None
            if len(words) == 3:
                name = words[2].lower()
                if not _STAGE_NAME_RE.match(name):
                    raise ins.error(f"invalid stage name {words[2]!r}",
                                    hint="stage names start with a letter; then letters, digits, . _ -")
                if any(s.name == name for s in stages):
                    raise ins.error(f"duplicate stage name {words[2]!r}",
                                    hint="each AS NAME must be unique in the Dockerfile")
            stages.append(Stage(len(stages), words[0], name, ins.flags.get("platform"), ins.line, ins))
        elif not stages:
            if ins.keyword != "ARG":
                raise ins.error(f"{ins.keyword} before FROM: a Dockerfile must start with FROM "
                                "(only ARG may come before it)", hint="add e.g. FROM busybox above it")
            global_args.append(ins)
        else:
            stages[-1].instructions.append(ins)
    p = Plan(df, global_args, stages)
    _check_copy_from(p)
    return p


def stage_dependencies(p: Plan, stage: Stage) -> list[tuple[Stage, Instruction]]:
    """Stages this one needs: its FROM (when it names a stage) and its ``COPY --from``."""
    deps = []
    earlier = {s.name: s for s in p.stages[:stage.index] if s.name}
    base = earlier.get(stage.base.lower())
    if base is not None:
        deps.append((base, stage.from_ins))
    for ins in stage.instructions:
        ref = ins.flags.get("from") if ins.keyword == "COPY" else None
        if ref and "$" not in ref:
            target = p.stage(ref)
            if target is not None:
                deps.append((target, ins))
    return deps


def _check_copy_from(p: Plan) -> None:
    """``COPY --from`` may name any stage; a stage that (indirectly) needs itself is a cycle."""
    state: dict[int, str] = {}

    def visit(stage: Stage, path: list[Stage]) -> None:
        state[stage.index] = "visiting"
        for dep, ins in stage_dependencies(p, stage):
            if dep.index == stage.index:
                raise ins.error(f"COPY --from={ins.flags.get('from')}: a stage cannot copy from itself",
                                hint="copy from an earlier stage, or split the stage in two")
            if state.get(dep.index) == "visiting":
                cycle = " -> ".join(s.label for s in path + [stage, dep])
                raise ins.error(f"circular dependency between stages: {cycle}",
                                hint="stages may copy from each other only in one direction")
            if dep.index not in state:
                visit(dep, path + [stage])
        state[stage.index] = "done"

    for stage in p.stages:
        if stage.index not in state:
            visit(stage, [])
