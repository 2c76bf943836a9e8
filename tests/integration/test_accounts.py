"""Login, logout, CSRF, roles and API tokens through HTTP. Members join by invitation: see
test_invitations.py."""

from sqlalchemy import select

from marketplace.accounts.models import ApiToken, OrganisationKind
from marketplace.audit.models import AuditRecord
from tests.factories import add_member, api_token, bearer, csrf_headers, login, make_account


async def test_login_shows_the_user_and_logout_ends_the_session(client, db):
    account = await make_account(db)
    await login(client, account)
    page = await client.get("/account/tokens")
    assert page.status_code == 200
    assert account.user.display_name in page.text
    assert "Macro" not in page.text and "alert error" not in page.text
    response = await client.post("/logout", headers=await csrf_headers(client))
    assert response.status_code in (302, 303)
    after = await client.get("/account/tokens")
    assert after.status_code in (302, 303)
    assert after.headers["location"].startswith("/login?next=")


async def test_wrong_password_is_refused_beside_the_field(client, db):
    account = await make_account(db)
    response = await client.post(
        "/login", data={"email": account.email, "password": "wrong-password-1"}, headers=await csrf_headers(client)
    )
    assert response.status_code == 422
    assert "邮箱或密码不正确" in response.text
    assert "mp_session" not in client.cookies or (await client.get("/account/tokens")).status_code != 200


async def test_form_post_without_csrf_token_is_refused(client, db):
    account = await make_account(db)
    await client.get("/login")
    response = await client.post("/login", data={"email": account.email, "password": account.password})
    assert response.status_code == 403


async def test_login_never_redirects_off_site(client, db):
    account = await make_account(db)
    response = await client.post(
        "/login",
        data={"email": account.email, "password": account.password, "next": "//evil.example/"},
        headers=await csrf_headers(client),
    )
    assert response.headers["location"] == "/"


async def test_org_admin_creates_a_token_that_authenticates_the_api(client, db):
    account = await make_account(db)
    await login(client, account)
    response = await client.post("/account/tokens", data={"name": "科研系统"}, headers=await csrf_headers(client))
    assert response.status_code == 201
    raw = response.text.split('id="new-token">')[1].split("<")[0]
    me = await client.get("/api/v1/me", headers=bearer(raw))
    assert me.status_code == 200
    assert me.json()["organisation_name"] == account.organisation.name
    stored = (await db.scalars(select(ApiToken))).all()
    assert len(stored) == 1 and stored[0].token_hash != raw


async def test_revoked_token_is_refused_with_problem_details(client, db):
    account = await make_account(db)
    raw = await api_token(db, account)
    token_id = (await db.scalars(select(ApiToken.id))).one()
    await login(client, account)
    await client.post(f"/account/tokens/{token_id}/revoke", headers=await csrf_headers(client))
    response = await client.get("/api/v1/me", headers=bearer(raw))
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 401
    actions = (await db.scalars(select(AuditRecord.action).where(AuditRecord.entity_type == "api_token"))).all()
    assert sorted(actions) == ["create", "revoke"]


async def test_api_without_token_is_unauthorised(client):
    response = await client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


async def test_members_cannot_manage_tokens_or_users(client, db):
    account = await make_account(db)
    member = await add_member(db, account)
    await login(client, member)
    assert (await client.get("/account/tokens")).status_code == 403
    assert (await client.get("/account/users")).status_code == 403


async def test_platform_admin_manages_platform_tokens_but_not_organisation_members(client, db):
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    await login(client, admin)
    assert (await client.get("/account/users")).status_code == 403
    assert (await client.get("/account/organisation")).status_code == 403
    page = await client.get("/account/tokens")
    assert page.status_code == 200 and 'href="/account/tokens">API 令牌</a>' in page.text
    created = await client.post("/account/tokens", data={"name": "核验系统"}, headers=await csrf_headers(client))
    assert created.status_code == 201
    raw = created.text.split('id="new-token">')[1].split("<")[0]
    me = await client.get("/api/v1/me", headers=bearer(raw))
    assert me.status_code == 200 and me.json()["role"] == "platform_admin"
    # The token carries the platform admin's rights on the admin API.
    assert (await client.get("/api/v1/enterprises", headers=bearer(raw))).status_code == 200
    token = (await db.scalars(select(ApiToken))).one()
    assert token.organisation_id == admin.organisation.id


async def test_htmx_requests_carry_the_csrf_token_of_the_page(client):
    page = await client.get("/login")
    assert f'"X-CSRFToken": "{client.cookies["csrftoken"]}"' in page.text
