"""The metadata instructions: they change the image config and add no layer.

ENV, LABEL, ARG, CMD, ENTRYPOINT, SHELL, EXPOSE, VOLUME, USER, STOPSIGNAL,
MAINTAINER, ONBUILD and HEALTHCHECK.  Each step's ``run`` applies the change
and returns the history entry, written as Docker writes it
(``/bin/sh -c #(nop)  CMD ["sh"]``, with Go's ``%q`` and durations), so
``history`` reads like Docker's; the builder marks it ``empty_layer``.
"""

from __future__ import annotations

from collections.abc import Callable
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any

from ..errors import SandboxError
from .parser import Instruction, json_form
from .stages import arg_decls, name_values
from .step import DEFAULT_SHELL, Prepared, State, StepBase


class MetadataSteps(StepBase):
    """The ``_do_<keyword>`` handlers of the instructions that write no layer."""

    def _meta(self, state: State, expanded: Any, apply: Callable[[dict[str, Any]], str],
              args: dict[str, str] | None = None) -> Prepared:
        def run() -> tuple[dict[str, Any], Any]:
            created_by = apply(state.config)
            return {"created_by": created_by}, None
        return Prepared("", expanded, args=args or {}, run=run)

    def _do_env(self, ins: Instruction, state: State) -> Prepared:
        env = state.expansion_env()
        pairs = [(self._expand(ins, k, env), self._expand(ins, v, env)) for k, v in name_values(ins, self._escape)]
        for key, _ in pairs:
            if not key or "=" in key:
                raise ins.error(f"ENV: invalid variable name {key!r}")

        def apply(cfg: dict[str, Any]) -> str:
            current = list(cfg.get("Env") or [])
            for key, value in pairs:
                # A key the image has keeps its place (Docker's order: PATH stays first).
                at = next((i for i, e in enumerate(current) if e.partition("=")[0] == key), None)
                if at is None:
                    current.append(f"{key}={value}")
                else:
                    current[at] = f"{key}={value}"
            cfg["Env"] = current
            return "/bin/sh -c #(nop)  ENV " + " ".join(f"{k}={v}" for k, v in pairs)
        return self._meta(state, pairs, apply, self._used_args(ins, state, ins.rest))

    def _do_label(self, ins: Instruction, state: State) -> Prepared:
        env = state.expansion_env()
        pairs = [(self._expand(ins, k, env), self._expand(ins, v, env)) for k, v in name_values(ins, self._escape)]

        def apply(cfg: dict[str, Any]) -> str:
            cfg["Labels"] = {**(cfg.get("Labels") or {}), **dict(pairs)}
            return "/bin/sh -c #(nop)  LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
        return self._meta(state, pairs, apply, self._used_args(ins, state, ins.rest))

    def _do_arg(self, ins: Instruction, state: State) -> Prepared:
        env = state.expansion_env()
        shown = []
        for name, default in arg_decls(ins, self._escape):
            if name in self.build_args:
                value: str | None = self.build_args[name]
                self.consumed.add(name)
            elif default is not None:
                value = self._expand(ins, default, env)
            elif name in self.global_args:
                value = self.global_args[name]
            else:
                value = self.auto_args.get(name)
            state.args[name] = value
            shown.append(f"{name}={default}" if default is not None else name)

        # The declaration, not the values: a new --build-arg value is a change for
        # the steps that use it (RUN names it), not for the ARG line itself.
        def apply(cfg: dict[str, Any]) -> str:
            return "/bin/sh -c #(nop)  ARG " + " ".join(shown)
        return self._meta(state, shown, apply)

    def _do_cmd(self, ins: Instruction, state: State) -> Prepared:
        form = json_form(ins.rest, ins)
        cmd = form if form is not None else state.shell() + [ins.rest.strip()]
        state.cmd_set = True

        def apply(cfg: dict[str, Any]) -> str:
            cfg["Cmd"] = cmd
            return "/bin/sh -c #(nop)  CMD " + go_quote_list(cmd)
        return self._meta(state, cmd, apply)

    def _do_entrypoint(self, ins: Instruction, state: State) -> Prepared:
        form = json_form(ins.rest, ins)
        entry = form if form is not None else state.shell() + [ins.rest.strip()]
        reset_cmd = not state.cmd_set

        def apply(cfg: dict[str, Any]) -> str:
            cfg["Entrypoint"] = entry
            if reset_cmd:
                cfg["Cmd"] = None  # Docker: an ENTRYPOINT resets a CMD inherited from the base image
            return "/bin/sh -c #(nop)  ENTRYPOINT " + go_quote_list(entry)
        return self._meta(state, [entry, reset_cmd], apply)

    def _do_shell(self, ins: Instruction, state: State) -> Prepared:
        shell = json_form(ins.rest, ins) or DEFAULT_SHELL

        def apply(cfg: dict[str, Any]) -> str:
            cfg["Shell"] = shell
            return "/bin/sh -c #(nop)  SHELL [" + " ".join(shell) + "]"
        return self._meta(state, shell, apply)

    def _do_expose(self, ins: Instruction, state: State) -> Prepared:
        env = state.expansion_env()
        ports = self._expand_words(ins, ins.rest, env)
        probe: dict[str, Any] = {}
        self._archive_change(ins, probe, "EXPOSE", " ".join(ports))

        def apply(cfg: dict[str, Any]) -> str:
            cfg["ExposedPorts"] = {**(cfg.get("ExposedPorts") or {}), **probe["ExposedPorts"]}
            return "/bin/sh -c #(nop)  EXPOSE " + " ".join(ports)
        return self._meta(state, ports, apply, self._used_args(ins, state, ins.rest))

    def _archive_change(self, ins: Instruction, config: dict[str, Any], keyword: str, rest: str) -> None:
        from ..image.archive import apply_changes
        try:
            apply_changes(config, [f"{keyword} {rest}"])
        except SandboxError as e:
            raise ins.error(Exception.__str__(e), hint=e.hint) from None

    def _do_volume(self, ins: Instruction, state: State) -> Prepared:
        env = state.expansion_env()
        form = json_form(ins.rest, ins)
        paths = [self._expand(ins, p, env) for p in form] if form is not None \
            else self._expand_words(ins, ins.rest, env)
        if not paths or not all(p.strip() for p in paths):
            raise ins.error("VOLUME specified can not be an empty string", hint="e.g. VOLUME /data")

        def apply(cfg: dict[str, Any]) -> str:
            cfg["Volumes"] = {**(cfg.get("Volumes") or {}), **{p: {} for p in paths}}
            return "/bin/sh -c #(nop)  VOLUME [" + " ".join(paths) + "]"
        return self._meta(state, paths, apply, self._used_args(ins, state, ins.rest))

    def _do_user(self, ins: Instruction, state: State) -> Prepared:
        user = self._expand(ins, ins.rest.strip(), state.expansion_env())

        def apply(cfg: dict[str, Any]) -> str:
            cfg["User"] = user
            return "/bin/sh -c #(nop)  USER " + user
        return self._meta(state, user, apply, self._used_args(ins, state, ins.rest))

    def _do_stopsignal(self, ins: Instruction, state: State) -> Prepared:
        sig = self._expand(ins, ins.rest.strip(), state.expansion_env())
        from ..runtime.container import parse_signal
        try:
            parse_signal(sig)
        except (SandboxError, ValueError, KeyError):
            raise ins.error(f"STOPSIGNAL {sig}: invalid signal", hint="e.g. STOPSIGNAL SIGTERM or 15") from None

        def apply(cfg: dict[str, Any]) -> str:
            cfg["StopSignal"] = sig
            return "/bin/sh -c #(nop)  STOPSIGNAL " + sig
        return self._meta(state, sig, apply, self._used_args(ins, state, ins.rest))

    def _do_maintainer(self, ins: Instruction, state: State) -> Prepared:
        name = ins.rest.strip()

        def apply(cfg: dict[str, Any]) -> str:
            state.image["author"] = name
            return "/bin/sh -c #(nop)  MAINTAINER " + name
        return self._meta(state, name, apply)

    def _do_onbuild(self, ins: Instruction, state: State) -> Prepared:
        expression = ins.rest.strip()

        def apply(cfg: dict[str, Any]) -> str:
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [expression]
            return "/bin/sh -c #(nop)  ONBUILD " + expression
        return self._meta(state, expression, apply)

    def _do_healthcheck(self, ins: Instruction, state: State) -> Prepared:
        rest = ins.rest.strip()
        first, _, command = rest.partition(" ")
        if first.upper() == "NONE":
            check: dict[str, Any] = {"Test": ["NONE"]}
        else:
            command = command.strip()
            form = json_form(command, ins)
            check = {"Test": ["CMD"] + form if form is not None else ["CMD-SHELL", command]}
            from ..containers.options import parse_duration
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                              ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
                value = ins.flags.get(flag)
                if value:
                    try:
                        ns = parse_duration(value, f"--{flag}")
                    except SandboxError as e:
                        raise ins.error(f"HEALTHCHECK --{flag}={value}: {Exception.__str__(e)}",
                                        hint="durations look like 30s, 1m30s or 500ms") from None
                    if 0 < ns < 1_000_000:
                        raise ins.error(f"HEALTHCHECK --{flag}={value} cannot be less than 1ms")
                    if ns:
                        check[key] = ns
            retries = ins.flags.get("retries")
            if retries:
                if not retries.lstrip("-").isdigit() or int(retries) < 0:
                    raise ins.error(f"HEALTHCHECK --retries={retries}: must be a whole number >= 0")
                if int(retries):
                    check["Retries"] = int(retries)

        def apply(cfg: dict[str, Any]) -> str:
            cfg["Healthcheck"] = check
            return "/bin/sh -c #(nop)  HEALTHCHECK " + go_health(check)
        return self._meta(state, check, apply)


def go_quote_list(items: list[str]) -> str:
    """Go's %q of a []string, as Docker writes CMD and ENTRYPOINT into history."""
    import json as _json
    return "[" + " ".join(_json.dumps(i) for i in items) + "]"


def go_duration(ns: int) -> str:
    """Go's time.Duration String(): 30s, 1m30s, 1h0m0s, 500ms."""
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                value = ns / size
                return (f"{value:.6f}".rstrip("0").rstrip(".")) + unit
    seconds = ns / 1e9
    h, rem = divmod(seconds, 3600)
    m, sec = divmod(rem, 60)
    text = f"{sec:.9f}".rstrip("0").rstrip(".") + "s"
    if h:
        return f"{int(h)}h{int(m)}m{text}"
    if m:
        return f"{int(m)}m{text}"
    return text


def go_health(check: dict[str, Any]) -> str:
    dur = go_duration
    return ("&{" + go_quote_list(check.get("Test", [])) + f' "{dur(check.get("Interval", 0))}"'
            f' "{dur(check.get("Timeout", 0))}" "{dur(check.get("StartPeriod", 0))}"'
            f" '\\x{check.get('Retries', 0):02x}'}}")
