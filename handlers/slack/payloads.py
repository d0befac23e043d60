"""Typed views of the Slack payloads the listeners read, and the shapes a request must have to be dispatched.

`envelope_problem` is checked at the edge, before Bolt sees the body: a signed request whose body is not
one of Slack's shapes (an interaction, an Events API envelope, a slash command) answers 400 with one log
line. `click_from_action` / `click_from_view` turn a payload into a `Click`, raising `ClickRefused` for a
button value or private_metadata that is not ours, so a listener never meets a KeyError.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError, model_validator

from bot.review.decisions import Click, ClickRefused
from bot.slack.ids import ModalMeta, ReviewRef

Id = Annotated[StrictStr, Field(min_length=1, max_length=255)]
Text = Annotated[StrictStr, Field(max_length=200_000)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class IdOnly(_Shape):
    id: Id


class User(_Shape):
    id: Id
    username: StrictStr | None = None
    name: StrictStr | None = None
    team_id: Id | None = None


class Action(_Shape):
    action_id: Id
    block_id: StrictStr | None = None
    value: Text | None = None
    type: StrictStr | None = None
    action_ts: StrictStr | None = None
    selected_option: dict[str, Any] | None = None


class Container(_Shape):
    type: StrictStr | None = None
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
    type: StrictStr | None = None
    callback_id: StrictStr = ""
    private_metadata: Text = ""
    hash: StrictStr | None = None
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
    trigger_id: StrictStr | None = None
    response_url: StrictStr | None = None
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
    user: StrictStr | dict[str, Any] | None = None
    channel: StrictStr | dict[str, Any] | None = None
    team: StrictStr | None = None
    user_team: StrictStr | None = None


class Envelope(_Shape):
    """An Events API request: url_verification, event_callback, app_rate_limited."""

    type: Id
    token: StrictStr | None = None
    challenge: StrictStr | None = None
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
    text: StrictStr = ""


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


def modal_meta_of(view: View | None) -> ModalMeta | None:
    """The review and card a modal names in its private_metadata (None when it names none)."""
    if view is None or not view.private_metadata:
        return None
    try:
        return ModalMeta.model_validate_json(view.private_metadata)
    except ValidationError:
        return None


def _team(payload: Interaction) -> str | None:
    if payload.team is not None:
        return payload.team.id
    return payload.user.team_id or (payload.view.team_id if payload.view else None)


def click_from_action(body: dict[str, Any]) -> Click:
    """A button click on a review card or in a modal; keyed so a redelivered payload acts once."""
    payload = _interaction(body)
    action = payload.actions[0]
    ref = _ref(action.value)
    container = payload.container or Container()
    in_view = container.type == "view" or (payload.view is not None and payload.message is None)
    meta = modal_meta_of(payload.view) if in_view else None
    channel = container.channel_id or (payload.channel.id if payload.channel else None)
    ts = container.message_ts or (payload.message.ts if payload.message else None)
    thread_ts = container.thread_ts or (payload.message.thread_ts if payload.message else None)
    where = f"{channel}:{ts}" if not in_view else f"view:{payload.view.id if payload.view else ''}"
    return Click(
        review_id=ref.review_id,
        user_id=payload.user.id,
        user_name=payload.user.username or payload.user.name,
        channel=(meta.channel if meta else channel) or "",
        message_ts=(meta.ts if meta else ts) or "",
        delivery_key=f"action:{where}:{action.action_id}:{payload.user.id}:{action.action_ts or ''}",
        team_id=_team(payload),
        thread_ts=None if in_view else thread_ts,
        surface="view" if in_view else "message",
        view_review_id=meta.review_id if meta else None,
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
    """What a modal opened from this click must remember."""
    return ModalMeta(review_id=click.review_id, channel=click.channel, ts=click.message_ts)


def where(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(user id, channel) of an interaction, to answer it ephemerally; channel None for a modal or App Home."""
    user = body.get("user")
    user_id = user.get("id") if isinstance(user, dict) else body.get("user_id")
    container = body.get("container")
    channel = container.get("channel_id") if isinstance(container, dict) else None
    if channel is None and isinstance(body.get("channel"), dict):
        channel = body["channel"].get("id")
    if channel is None and isinstance(body.get("view"), dict):
        meta = body["view"].get("private_metadata")
        parsed = modal_meta_of(View(id="v", private_metadata=meta)) if isinstance(meta, str) else None
        channel = parsed.channel if parsed else None
    if channel is None and isinstance(body.get("channel_id"), str):
        channel = body["channel_id"]
    return (user_id if isinstance(user_id, str) else None), (channel if isinstance(channel, str) else None)


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
