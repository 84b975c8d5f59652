"""Who a user is across regions: (the region their account lives in, its id there).

Usernames are per region (anyone may sign up "moderator" in any region), so
changes relayed between regions name people by this global identity only.
A region stands in for another region's user with a placeholder account
(regions.models.RemoteUser): it cannot sign in, and its username,
"<name>:<region>", holds a ':' that Django's username validator (sign-up,
createsuperuser) refuses, so no local account can take it first.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from regions.models import RemoteUser

REGION_NAME_MAX = 32  # RemoteUser.origin_region
USER_NAME_MAX = 150  # what the placeholder's name is cut to (AbstractUser.username)


def identity_of(user) -> dict:
    """The global identity of a user of this region, for the region stream:
    {"region", "id", "name"}. A placeholder stands for the user it was made for."""
    remote = RemoteUser.objects.filter(user_id=user.pk).first()
    if remote is not None:
        return {"region": remote.origin_region, "id": remote.origin_user_id, "name": user.get_username()}
    return {"region": settings.REGION, "id": user.pk, "name": user.get_username()}


def parse_identity(value, default_region: str = "") -> tuple[str, int, str] | None:
    """(region, id, name) of an identity another region sent, or None when it is
    not one (a bare username, as older relays sent, included: names prove nothing)."""
    if not isinstance(value, dict):
        return None
    region = value.get("region", default_region)
    number, name = value.get("id"), value.get("name", "")
    if not isinstance(region, str) or not region or len(region) > REGION_NAME_MAX or not region.isprintable():
        return None
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 2**63:
        return None
    return region, number, name if isinstance(name, str) else ""


def user_for(region: str, number: int, name: str, create: bool = True):
    """The account standing for user `number` of `region` here: the user itself
    when the region is this one (None if there is no such user), else its
    placeholder, made on first sight unless `create` is false."""
    User = get_user_model()
    if region == settings.REGION:
        return User.objects.filter(pk=number).first()
    remote = RemoteUser.objects.select_related("user").filter(origin_region=region, origin_user_id=number).first()
    if remote is not None or not create:
        return remote.user if remote is not None else None
    try:
        with transaction.atomic():
            user = User(**{User.USERNAME_FIELD: _free_name(User, name, region, number)})
            user.set_unusable_password()
            user.save()
            RemoteUser.objects.create(origin_region=region, origin_user_id=number, user=user)
    except IntegrityError:  # made meanwhile by another ingest loop
        return RemoteUser.objects.select_related("user").get(origin_region=region, origin_user_id=number).user
    return user


def _free_name(User, name: str, region: str, number: int) -> str:
    """ "<name>:<region>", or with the id too when that is taken (the name was
    given to another user there since)."""
    clean = "".join(c for c in name if c.isprintable() and c != ":") or "user"
    for suffix in (f":{region}", f":{region}:{number}"):
        candidate = clean[: USER_NAME_MAX - len(suffix)] + suffix
        if not User.objects.filter(**{User.USERNAME_FIELD: candidate}).exists():
            return candidate
    return f"user:{region}:{number}"
