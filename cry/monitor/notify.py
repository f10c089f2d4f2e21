"""Phone alerts without Home Assistant or an open page, through apprise (ntfy, Telegram, Pushover,
Signal, e-mail, webhooks, ...: one URL each, https://github.com/caronc/apprise/wiki).

Two messages, no more: one when a crying episode has lasted --alert-after seconds (the page's
rule, cry.monitor.alerts: once per episode, at most one per --alert-cooldown), and one when the
monitor stops hearing (then one when it hears again). Sending blocks on the network, so the
output runs behind cry.monitor.outputs.Background; a message that cannot be delivered is said on
stderr (once until one gets through) and the monitor listens on.

URLs often hold a secret (a bot token, a password). They come from a file (--notify-file, one
URL a line, '#' comments) or the environment (CRY_NOTIFY_URLS, separated by spaces); on the
command line (--notify), where every user of the machine can read them, apprise's own view of
which parts are secret decides: a URL with one is refused.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from cry.decision import EpisodeEvent, State, WindowState
from cry.files import UserError
from cry.live_path import Output
from cry.monitor.alerts import Alerts
from cry.monitor.outputs import Background

URLS_ENV = "CRY_NOTIFY_URLS"


def read_url_file(path: Path) -> list[str]:
    """The URLs of a file: one a line, blank lines and '#' comments skipped."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the notification URLs ({getattr(exc, 'strerror', None) or exc})"
                        ) from None
    urls = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not urls:
        raise UserError(f"{path}: no notification URL in it (one a line)")
    return urls


def load_service(url: str, where: str):
    """apprise's plugin for url, or one UserError naming where the URL came from."""
    import apprise

    service = apprise.Apprise.instantiate(url)
    if service is None:
        raise UserError(f"{where}: {url.split('://')[0]}://...: not a notification URL apprise knows "
                        f"(see https://github.com/caronc/apprise/wiki)")
    return service


def holds_secret(service) -> bool:
    """Whether apprise hides part of the URL when it prints it (a token, a password, a key)."""
    return service.url(privacy=True) != service.url(privacy=False)


def notify_services(given: list[str], files: list[Path], environ: dict) -> list:
    """apprise plugins for --notify URLs (refused if they hold a secret), --notify-file files and $CRY_NOTIFY_URLS."""
    services = []
    for url in given:
        service = load_service(url, "--notify")
        if holds_secret(service):
            raise UserError(f"--notify {service.url(privacy=True).split('?')[0]}: this URL holds a secret; put it in "
                            f"a file for --notify-file, or in ${URLS_ENV}, not on the command line")
        services.append(service)
    for path in files:
        services += [load_service(url, str(path)) for url in read_url_file(path)]
    services += [load_service(url, f"${URLS_ENV}") for url in environ.get(URLS_ENV, "").split()]
    return services


def minutes_and_seconds(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


class Notify(Output):
    """Sends the alert and the not-listening messages to every service (apprise plugins)."""

    def __init__(self, services: list, alerts: Alerts, name: str = "Cry monitor"):
        import apprise

        self.apprise, self.alerts, self.name = apprise.Apprise(), alerts, name
        for service in services:
            self.apprise.add(service)
        self.episode: EpisodeEvent | None = None  # the episode under way
        self.deaf_since: float | None = None      # when the monitor stopped hearing
        self.failing, self.sent = False, 0

    def on_episode(self, event: EpisodeEvent) -> None:
        self.episode = event if event.kind == "start" else None

    def on_window(self, state: WindowState) -> None:
        if state.state == State.NOT_LISTENING:
            if self.deaf_since is None:
                self.deaf_since = state.time
                self.send(f"{self.name}: not listening", f"{self.name} cannot hear: {state.heard}. It keeps "
                          f"trying; until then it will not tell you about crying.")
            return
        if self.deaf_since is not None:
            self.send(f"{self.name}: listening again", f"{self.name} hears again, after "
                      f"{minutes_and_seconds(state.time - self.deaf_since)} without.")
            self.deaf_since = None
        alert = self.alerts.update(state, self.episode)
        if alert is not None:
            since = time.strftime("%H:%M:%S", time.localtime(alert["episode_start"]))
            self.send("Baby crying", f"Crying for {minutes_and_seconds(alert['lasted_seconds'])} (since {since}): "
                      f"{alert['reason_text']}")

    def send(self, title: str, body: str) -> None:
        if self.apprise.notify(title=title, body=body):
            self.sent += 1
            if self.failing:
                print("notify: delivered again", file=sys.stderr, flush=True)
            self.failing = False
        elif not self.failing:
            self.failing = True
            print(f"warning: notify: could not deliver {title!r} to every service; listening on, "
                  f"each next message tried again", file=sys.stderr, flush=True)


def notify_outputs(services: list, alerts: Alerts, name: str) -> list[Output]:
    """[the notifications, on their own thread] when there is a service, else []."""
    if not services:
        return []
    names = ", ".join(service.url(privacy=True).split("?")[0] for service in services)
    print(f"notify: {names}", file=sys.stderr, flush=True)
    return [Background(Notify(services, alerts, name))]
