"""Typed views of the Slack payloads the listeners read, and the shapes a request must have to be dispatched.

`envelope_problem` is checked at the edge, before Bolt sees the body: a signed request whose body is not
one of Slack's shapes (an interaction, an Events API envelope, a slash command) answers 400 with one log
line. `click_from_action` / `click_from_view` turn a payload into a `Click`, raising `ClickRefused` for a
button value or private_metadata that is not ours, so a listener never meets a KeyError.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    model_validator,
)

from bot.review.decisions import Click, ClickRefused
from bot.slack.ids import ModalMeta, ReviewRef


def _no_surrogates(text: str) -> str:
    """Refuse lone surrogates: they cannot be stored or sent on as UTF-8."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        raise ValueError("lone surrogate in text")
    return text


Str = Annotated[StrictStr, AfterValidator(_no_surrogates)]
Id = Annotated[Str, Field(min_length=1, max_length=255)]
Text = Annotated[Str, Field(max_length=200_000)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class IdOnly(_Shape):
    id: Id


class User(_Shape):
    id: Id
    username: Str | None = None
    name: Str | None = None
    team_id: Id | None = None


class Action(_Shape):
    action_id: Id
    block_id: Str | None = None
    value: Text | None = None
    type: Str | None = None
    action_ts: Str | None = None
    selected_option: dict[str, Any] | None = None


class Container(_Shape):
    type: Str | None = None
    channel_id: Id | None = None
    message_ts: Id | None = None
    thread_ts: Id | None = None
    view_id: Id | None = None


class Message(_Shape):
    ts: Id
    thread_ts: Id | None = None


class ViewState(_Shape):
    values: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)


class View(_Shape):
    id: Id
    type: Str | None = None
    callback_id: Str = ""
    private_metadata: Text = ""
    hash: Str | None = None
    state: ViewState = Field(default_factory=ViewState)
    team_id: Id | None = None
    app_installed_team_id: Id | None = None


class Interaction(_Shape):
    """An interactive payload (`payload=` form field): block_actions, view_submission, shortcuts, ..."""

    type: Id
    user: User
    team: IdOnly | None = None
    enterprise: IdOnly | None = None
    channel: IdOnly | None = None
    container: Container | None = None
    message: Message | None = None
    view: View | None = None
    actions: list[Action] = Field(default_factory=list)
    trigger_id: Str | None = None
    response_url: Str | None = None
    is_enterprise_install: StrictBool | None = None

    @model_validator(mode="after")
    def _has_what_its_type_needs(self) -> Interaction:
        if self.type == "block_actions" and not self.actions:
            raise ValueError("block_actions without actions")
        if self.type in ("view_submission", "view_closed") and self.view is None:
            raise ValueError(f"{self.type} without a view")
        return self


class Authorization(_Shape):
    team_id: Id | None = None
    enterprise_id: Id | None = None
    user_id: Id | None = None
    is_enterprise_install: StrictBool | None = None


class Event(_Shape):
    type: Id
    user: Str | dict[str, Any] | None = None
    channel: Str | dict[str, Any] | None = None
    team: Str | None = None
    user_team: Str | None = None


class Envelope(_Shape):
    """An Events API request: url_verification, event_callback, app_rate_limited."""

    type: Id
    token: Str | None = None
    challenge: Str | None = None
    team_id: Id | None = None
    enterprise_id: Id | None = None
    api_app_id: Id | None = None
    event: Event | None = None
    event_id: Id | None = None
    authorizations: list[Authorization] | None = None
    is_ext_shared_channel: StrictBool | None = None

    @model_validator(mode="after")
    def _has_what_its_type_needs(self) -> Envelope:
        if self.type == "event_callback" and (self.event is None or self.event_id is None):
            raise ValueError("event_callback without event or event_id")
        if self.type == "url_verification" and self.challenge is None:
            raise ValueError("url_verification without challenge")
        return self


class SlashCommand(_Shape):
    command: Id
    user_id: Id
    channel_id: Id
    team_id: Id | None = None
    text: Str = ""


def envelope_problem(body: Any, *, interactive: bool) -> str | None:
    """Why a parsed request body is not one Slack sends (None when it is one)."""
    if not isinstance(body, dict):
        return f"the body is a JSON {type(body).__name__}, not an object"
    model: type[_Shape]
    if interactive:
        model = Interaction
    elif "command" in body:
        model = SlashCommand
    elif "ssl_check" in body:
        return None
    else:
        model = Envelope
    try:
        model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or model.__name__
        return f"{model.__name__} {where}: {first['msg']}"
    return None


# ---------------------------------------------------------------- clicks


def _interaction(body: dict[str, Any]) -> Interaction:
    try:
        return Interaction.model_validate(body)
    except ValidationError as exc:
        raise ClickRefused(None, "This click could not be read (it is not one Slack sends).") from exc


def _ref(value: str | None) -> ReviewRef:
    try:
        return ReviewRef.model_validate_json(value or "")
    except ValidationError as exc:
        raise ClickRefused(None, "This button is not one of this app's review buttons.") from exc


def meta_from(private_metadata: str) -> ModalMeta | None:
    """The review and card a modal's private_metadata names (None when it names none)."""
    try:
        return ModalMeta.model_validate_json(private_metadata) if private_metadata else None
    except ValidationError:
        return None


def modal_meta_of(view: View | None) -> ModalMeta | None:
    """The review and card a modal names in its private_metadata (None when it names none)."""
    return meta_from(view.private_metadata) if view is not None else None


def _team(payload: Interaction) -> str | None:
    if payload.team is not None:
        return payload.team.id
    return payload.user.team_id or (payload.view.team_id if payload.view else None)


def _message_origin(payload: Interaction) -> tuple[str, str, str | None]:
    """(channel, message ts, thread ts) of a click in a message ("" when Slack did not say)."""
    container = payload.container or Container()
    message = payload.message
    channel = container.channel_id or (payload.channel.id if payload.channel else "")
    ts = container.message_ts or (message.ts if message else "")
    return channel, ts, container.thread_ts or (message.thread_ts if message else None)


def _in_view(payload: Interaction) -> bool:
    container = payload.container
    if container is not None and container.type:
        return container.type == "view"
    return payload.view is not None and payload.message is None


def _in_home(payload: Interaction) -> bool:
    """The click came from the clicker's App Home tab (a view of type "home"; no channel, no message)."""
    return payload.view is not None and payload.view.type == "home" and payload.message is None


def click_from_action(body: dict[str, Any]) -> Click:
    """A button click on a review card, in a modal or on the App Home tab; keyed so a redelivery acts once."""
    payload = _interaction(body)
    action = payload.actions[0]
    ref = _ref(action.value)
    user = payload.user
    common: dict[str, Any] = {
        "review_id": ref.review_id,
        "user_id": user.id,
        "user_name": user.username or user.name,
        "team_id": _team(payload),
    }
    key = f"{action.action_id}:{user.id}:{action.action_ts or ''}"
    if _in_home(payload):
        # Slack publishes one Home view per user: its id, the clicker and the action_ts name the click.
        view_id = payload.view.id if payload.view else ""
        return Click(
            **common, channel="", message_ts="", delivery_key=f"action:home:{view_id}:{key}", surface="home"
        )
    if _in_view(payload):
        view_id = payload.view.id if payload.view else ""
        meta = modal_meta_of(payload.view)
        return Click(
            **common,
            channel=meta.channel if meta else "",
            message_ts=meta.ts if meta else "",
            delivery_key=f"action:view:{view_id}:{key}",
            surface="view",
            view_review_id=meta.review_id if meta else None,
        )
    channel, ts, thread_ts = _message_origin(payload)
    return Click(
        **common,
        channel=channel,
        message_ts=ts,
        thread_ts=thread_ts,
        delivery_key=f"action:{channel}:{ts}:{key}",
    )


def click_from_view(body: dict[str, Any]) -> Click:
    """A modal submission, with the card it came from (from the view's private_metadata)."""
    payload = _interaction(body)
    meta = modal_meta_of(payload.view)
    if meta is None or payload.view is None:
        raise ClickRefused(None, "This window does not name a review any more; open it again from the card.")
    return Click(
        review_id=meta.review_id,
        user_id=payload.user.id,
        user_name=payload.user.username or payload.user.name,
        channel=meta.channel,
        message_ts=meta.ts,
        delivery_key=f"view:{payload.view.id}",
        team_id=_team(payload),
        surface="view",
        view_review_id=meta.review_id,
    )


def modal_meta(click: Click) -> ModalMeta:
    """What a modal opened from this click must remember (no channel when opened from App Home)."""
    return ModalMeta(review_id=click.review_id, channel=click.channel, ts=click.message_ts)


def _channel_in(body: dict[str, Any]) -> str | None:
    for holder, key in (("container", "channel_id"), ("channel", "id")):
        part = body.get(holder)
        if isinstance(part, dict) and isinstance(part.get(key), str):
            return str(part[key])
    view = body.get("view")
    if isinstance(view, dict) and isinstance(view.get("private_metadata"), str):
        meta = meta_from(view["private_metadata"])
        return meta.channel if meta and meta.channel else None
    return body["channel_id"] if isinstance(body.get("channel_id"), str) else None


def where(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(user id, channel) of an interaction, to answer it ephemerally; channel None for a modal or App Home."""
    user = body.get("user")
    user_id = user.get("id") if isinstance(user, dict) else body.get("user_id")
    return (user_id if isinstance(user_id, str) else None), _channel_in(body)


def review_id_of(body: dict[str, Any]) -> str | None:
    """The review an interaction names (button value or modal metadata), for the log; None when none."""
    try:
        payload = Interaction.model_validate(body)
    except ValidationError:
        return None
    for action in payload.actions[:1]:
        try:
            return ReviewRef.model_validate_json(action.value or "").review_id
        except ValidationError:
            break
    meta = modal_meta_of(payload.view)
    return meta.review_id if meta else None


def view_of(body: dict[str, Any]) -> View:
    """The view of a modal submission or of a click inside a modal (ClickRefused when there is none)."""
    view = _interaction(body).view
    if view is None:
        raise ClickRefused(None, "This click came from no window this app opened.")
    return view


def view_values(body: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """What was typed into a modal: state.values, block id → action id → element state."""
    return view_of(body).state.values


def trigger_of(body: dict[str, Any]) -> str:
    """The interaction's trigger_id, to open a modal with (ClickRefused when Slack sent none)."""
    trigger = _interaction(body).trigger_id
    if not trigger:
        raise ClickRefused(review_id_of(body), "Slack sent no trigger to open the window with; click again.")
    return trigger


# ---------------------------------------------------------------- App Home


def home_user(body: dict[str, Any]) -> str | None:
    """The user whose App Home should be published again after this interaction (None: not from Home).

    A click on the Home tab, or the submission of a modal opened from it (its metadata names no card
    channel: modals opened from a card always carry the card's channel).
    """
    try:
        payload = Interaction.model_validate(body)
    except ValidationError:
        return None
    if payload.type == "block_actions" and _in_home(payload):
        return payload.user.id
    if payload.type == "view_submission":
        meta = modal_meta_of(payload.view)
        if meta is not None and not meta.channel:
            return payload.user.id
    return None


def home_interaction(body: dict[str, Any]) -> Interaction:
    """The payload of a click on the App Home tab (ClickRefused for one from anywhere else)."""
    payload = _interaction(body)
    if not _in_home(payload):
        raise ClickRefused(None, "This button only works on the app's Home tab.")
    return payload
