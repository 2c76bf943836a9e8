"""The full-text index follows the catalogue table, holds whole jieba words, and is what keyword
searches use (FTS5 on SQLite, the GIN expression index on PostgreSQL)."""

from sqlalchemy import delete, event, select, text, update

from marketplace.catalogue.models import CatalogueEntry
from marketplace.catalogue.rules import CatalogueQuery, SortOrder
from marketplace.catalogue.services import remove_entry, search, upsert_entry
from marketplace.offers.models import OpenLicenceOffer
from marketplace.patents.models import PatentType
from tests.catalogue_factories import make_licensor, publish_offer, small_catalogue


async def _found(db, q: str) -> set[int]:
    return {hit.offer_id for hit in (await search(db, CatalogueQuery(q=q))).items}


async def _check_index(db) -> None:
    """SQLite: FTS5's own check that the index matches catalogue_entries (it raises if not)."""
    if db.bind.dialect.name == "sqlite":
        await db.execute(text("INSERT INTO catalogue_fts(catalogue_fts, rank) VALUES ('integrity-check', 1)"))


async def test_the_index_follows_inserts_updates_and_deletes(db):
    licensor = await make_licensor(db)
    offer = await publish_offer(db, licensor, "一种石墨烯散热片", "用于手机芯片。")
    other = await publish_offer(db, licensor, "一种污水处理系统", "生物膜反应器。")
    await _check_index(db)
    assert await _found(db, "石墨烯") == {offer.id}

    offer.patent.title = "一种碳纳米管散热片"
    await upsert_entry(db, offer)
    await db.commit()
    await _check_index(db)
    assert await _found(db, "石墨烯") == set()
    assert await _found(db, "碳纳米管 芯片") == {offer.id}

    # Facet changes move the row between facets, with or without a keyword.
    licensor.division_code = "440305"
    offer.patent.trl = 8
    await upsert_entry(db, offer)
    await db.commit()
    await _check_index(db)
    moved = {hit.offer_id for hit in (await search(db, CatalogueQuery(q="碳纳米管", province="44", min_trl=8))).items}
    assert moved == {offer.id}
    assert (await search(db, CatalogueQuery(q="碳纳米管", province="11"))).total == 0
    assert (await search(db, CatalogueQuery(province="44", min_trl=8))).total == 1

    # A price-only change leaves the words searchable.
    await db.execute(update(CatalogueEntry).where(CatalogueEntry.offer_id == offer.id).values(upfront_cost_fen=1))
    await db.commit()
    await _check_index(db)
    assert await _found(db, "碳纳米管") == {offer.id}

    await remove_entry(db, offer.id)
    await db.commit()
    await _check_index(db)
    assert await _found(db, "碳纳米管") == set()
    assert await _found(db, "污水处理") == {other.id}

    # Deleting the offer cascades to its catalogue row, and the index follows that too.
    await db.execute(delete(OpenLicenceOffer).where(OpenLicenceOffer.id == other.id))
    await db.commit()
    await _check_index(db)
    assert await _found(db, "污水处理") == set()
    assert (await search(db, CatalogueQuery())).total == 0


async def test_index_terms_are_whole_chinese_words(db):
    licensor = await make_licensor(db)
    offer = await publish_offer(db, licensor, "石墨烯锂电池负极", "采用钙钛矿涂层。", patent_type=PatentType.INVENTION)
    tokens = await db.scalar(select(CatalogueEntry.search_tokens).where(CatalogueEntry.offer_id == offer.id))
    if db.bind.dialect.name == "sqlite":
        vocabulary = "CREATE VIRTUAL TABLE IF NOT EXISTS temp.catalogue_vocab USING fts5vocab(main, catalogue_fts, col)"
        await db.execute(text(vocabulary))
        rows = (await db.execute(text("SELECT col, term FROM temp.catalogue_vocab"))).all()
        await db.execute(text("DROP TABLE temp.catalogue_vocab"))
        terms = {term for col, term in rows if col == "search_tokens"}
        # The equality facets are indexed beside the words (lower-cased by unicode61).
        facet_terms = {term for col, term in rows if col == "facet_tokens"}
        expected = {
            "tinvention",
            "mlumpsum",
            "a0",
            "p11",
            "sh",
            "ch01",
            f"l{licensor.id}",
            "r1",
            "r2",
            "r3",
            "r4",
            "r5",
        }
        assert facet_terms == expected
    else:
        vectors = text("SELECT unnest(tsvector_to_array(to_tsvector('simple', search_tokens))) FROM catalogue_entries")
        terms = set((await db.scalars(vectors)).all())
    assert terms == set(tokens.split())
    assert {"石墨烯", "锂电池", "负极", "钙钛矿"} <= terms
    assert "烯" not in terms and "钛" not in terms


async def test_keyword_searches_use_the_full_text_index(db, engine):
    await small_catalogue(db)
    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "catalogue_fts" in statement or "to_tsquery" in statement:
            statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        from marketplace.db import make_sessionmaker

        async with make_sessionmaker(engine)() as session:
            await search(session, CatalogueQuery(q="石墨烯 负极"))
            await search(session, CatalogueQuery(q="石墨烯", sort=SortOrder.NEWEST))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)

    # One statement per search reads the matches (the page's rows are then fetched by id).
    assert len(statements) == 2
    async with engine.connect() as conn:
        for statement, parameters in statements:
            if conn.dialect.name == "sqlite":
                plan = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)).all()
                assert any("catalogue_fts VIRTUAL TABLE INDEX" in row[-1] for row in plan), (statement, plan)
            else:
                # Five rows make a sequential scan cheapest; forbid it to see that the index applies.
                await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
                plan = (await conn.exec_driver_sql("EXPLAIN " + statement, parameters)).all()
                assert any("ix_catalogue_fts" in row[0] for row in plan), "\n".join(r[0] for r in plan)
        await conn.rollback()
