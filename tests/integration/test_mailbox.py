"""The local mailbox (本地邮箱) where platform admins read what the platform sent, and the header
links each kind of visitor gets."""

from __future__ import annotations

from sqlalchemy import select

from marketplace.accounts.models import OrganisationKind
from marketplace.outbox.models import MailMessage
from marketplace.outbox.services import queue_email
from tests.factories import add_member, delivered_mail, login, make_account


async def _mail(db, sessionmaker, settings, *messages: tuple[str, str, str]) -> list[MailMessage]:
    for n, (to, subject, body) in enumerate(messages):
        await queue_email(db, to=to, subject=subject, body=body, dedupe_key=f"test:{n}")
    await db.commit()
    return await delivered_mail(db, sessionmaker, settings)


async def test_platform_admin_reads_the_mailbox_newest_first_and_filters_by_recipient(
    client, db, sessionmaker, settings
):
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    await _mail(
        db, sessionmaker, settings,
        ("alice@example.cn", "第一封", "正文一"),
        ("bob@example.cn", "第二封", "正文二"),
        ("alice@example.cn", "第三封", "正文三"),
    )  # fmt: skip
    await login(client, admin)
    page = await client.get("/admin/mailbox")
    assert page.status_code == 200
    assert page.text.index("第三封") < page.text.index("第二封") < page.text.index("第一封")
    assert 'href="/admin/mailbox">本地邮箱</a>' in page.text and 'href="/admin/enterprises">企业核验</a>' in page.text

    alice = await client.get("/admin/mailbox", params={"to": "ALICE@"})
    assert "第一封" in alice.text and "第三封" in alice.text and "第二封" not in alice.text
    nobody = await client.get("/admin/mailbox", params={"to": "100%_match"})
    assert "没有发给该收件人的邮件" in nobody.text


async def test_a_message_shows_its_links_clickable_and_its_text_escaped(client, db, sessionmaker, settings):
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    mail = await _mail(
        db, sessionmaker, settings,
        ("carol@example.cn", "请确认您的邮箱",
         "打开链接：\nhttp://127.0.0.1:8000/confirm-email/abc_DEF-123\n<script>alert(1)</script>"),
    )  # fmt: skip
    await login(client, admin)
    page = await client.get(f"/admin/mailbox/{mail[0].id}")
    assert page.status_code == 200
    assert "carol@example.cn" in page.text and "请确认您的邮箱" in page.text
    link = "http://127.0.0.1:8000/confirm-email/abc_DEF-123"
    assert f'<a href="{link}">{link}</a>' in page.text
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text
    assert (await client.get("/admin/mailbox/999999")).status_code == 404


async def test_the_mailbox_is_paged(client, db, sessionmaker, settings):
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    await _mail(db, sessionmaker, settings, *((f"user{n}@example.cn", f"邮件{n:02d}", "正文") for n in range(51)))
    await login(client, admin)
    first = await client.get("/admin/mailbox")
    assert "第 1 / 2 页，共 51 条" in first.text and "邮件50" in first.text and "邮件00" not in first.text
    second = await client.get("/admin/mailbox?page=2")
    assert "邮件00" in second.text and "邮件50" not in second.text


async def test_only_platform_admins_read_the_mailbox(client, db, sessionmaker, settings):
    mail = await _mail(db, sessionmaker, settings, ("dave@example.cn", "机密", "正文"))
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    for account in (enterprise, await add_member(db, enterprise), await make_account(db)):
        await login(client, account)
        assert (await client.get("/admin/mailbox")).status_code == 403
        assert (await client.get(f"/admin/mailbox/{mail[0].id}")).status_code == 403
        assert 'href="/admin/mailbox"' not in (await client.get("/catalogue")).text
    client.cookies.clear()
    anonymous = await client.get("/admin/mailbox")
    assert anonymous.status_code in (302, 303) and anonymous.headers["location"].startswith("/login?next=")


async def test_header_links_fit_each_visitor(client, db):
    anonymous = await client.get("/catalogue")
    assert 'href="/signup">注册企业</a>' in anonymous.text and 'href="/login">登录</a>' in anonymous.text

    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    await login(client, enterprise)
    page = (await client.get("/catalogue")).text
    assert 'href="/account/organisation">机构信息</a>' in page and 'href="/signup"' not in page
    assert 'href="/admin/enterprises"' not in page

    member = await add_member(db, enterprise)
    await login(client, member)
    assert 'href="/account/organisation"' not in (await client.get("/catalogue")).text

    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    await login(client, admin)
    page = (await client.get("/catalogue")).text
    for link in ('href="/admin/enterprises">企业核验</a>', 'href="/admin/mailbox">本地邮箱</a>',
                 'href="/account/tokens">API 令牌</a>'):  # fmt: skip
        assert link in page
    assert 'href="/account/organisation"' not in page
    assert len((await db.scalars(select(MailMessage))).all()) == 0
