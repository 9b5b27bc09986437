"""Relations and ``prefetch_related``: what foreign keys declare, one query per relation
whatever the number of rows (counted from the core's own statement spans), on the
connection and transaction the rows came from, and the errors for what cannot work."""

from __future__ import annotations

import copy
import pickle
import re
from contextlib import AbstractContextManager
from typing import Any

import pytest

import chakra
from chakra import Field, Integer, Model, Session, String
from chakra.relations import Relation
from conftest import recreate, sent


class Author(Model):
    __tablename__ = "pf_authors"
    id = Field(Integer, primary_key=True)
    name = Field(String(20))


class Book(Model):
    __tablename__ = "pf_books"
    id = Field(Integer, primary_key=True)
    title = Field(String(20))
    author_id = Field(Integer, references=Author, on_delete="cascade", related_name="books")
    editor_id = Field(Integer, nullable=True, references=Author, on_delete="set null")


class Review(Model):
    __tablename__ = "pf_reviews"
    id = Field(Integer, primary_key=True)
    book_id = Field(Integer, references=Book, on_delete="cascade", related_name="reviews")
    stars = Field(Integer)


class Node(Model):
    __tablename__ = "pf_nodes"
    id = Field(Integer, primary_key=True)
    label = Field(String(20))
    parent_id = Field(Integer, nullable=True, references="self", on_delete="cascade", related_name="children")


@pytest.fixture(autouse=True)
def library() -> None:
    recreate(Author, Book, Review, Node)
    ann, ben, _ = Author.objects.bulk_create_sync([Author(name="Ann"), Author(name="Ben"), Author(name="Cid")])
    a1, _, b1 = Book.objects.bulk_create_sync(
        [
            Book(title="a1", author_id=ann.id, editor_id=ben.id),
            Book(title="a2", author_id=ann.id, editor_id=None),
            Book(title="b1", author_id=ben.id, editor_id=ann.id),
        ]
    )
    # Rewriting a1 moves its row to the end of the table: a read without ORDER BY returns
    # it last, so only an explicit order gives primary key order.
    Book.objects.filter(id=a1.id).update_sync(title="a1")
    Review.objects.bulk_create_sync(
        [Review(book_id=a1.id, stars=5), Review(book_id=b1.id, stars=4), Review(book_id=a1.id, stars=3)]
    )
    root = Node.objects.create_sync(label="root")
    left = Node.objects.create_sync(label="left", parent_id=root.id)
    Node.objects.create_sync(label="right", parent_id=root.id)
    Node.objects.create_sync(label="leaf", parent_id=left.id)


def titles(books: list[Book]) -> list[str]:
    return [b.title for b in books]


def raises(error: type[BaseException], message: str) -> AbstractContextManager[Any]:
    """``pytest.raises`` for exactly ``message``."""
    return pytest.raises(error, match=f"^{re.escape(message)}$")


NAME_RELATION = 'name it with relation="..."'
NAME_RELATED = 'name it with related_name="..." (or "+" for none)'


def test_foreign_keys_to_models_declare_relations_both_ways() -> None:
    assert list(Book._meta.relations) == ["author", "editor", "reviews"]
    assert list(Author._meta.relations) == ["books", "book_set"]
    assert list(Review._meta.relations) == ["book"]
    assert list(Node._meta.relations) == ["parent", "children"]
    author, books, book_set = Book.author, Author.books, Author.book_set
    assert isinstance(author, Relation) and not author.many and author.target is Author
    assert isinstance(books, Relation) and books.many and books.target is Book
    assert book_set.field is Book._meta.fields["editor_id"]
    assert repr(Book.author) == "<Relation Book.author: Author | None through Book.author_id>"
    assert repr(Author.books) == "<Relation Author.books: list[Book] through Book.author_id>"
    # Instances keep their slots only: no __dict__ for the relations.
    assert not hasattr(Book(title="x", author_id=1), "__dict__")

    class Loan(Model):
        __tablename__ = "pf_loans"
        id = Field(Integer, primary_key=True)
        borrower = Field(Integer, references=Author, related_name="+")
        lender = Field(Integer, references=Author, relation="lent_by", related_name="+")
        shelf_id = Field(Integer, nullable=True, references="pf_shelves.id")

    # No `_id`: no forward relation unless named; "+": no reverse one; "table.column": none.
    assert list(Loan._meta.relations) == ["lent_by"]
    assert list(Author._meta.relations) == ["books", "book_set"]

    class BookClub(Model):
        __tablename__ = "pf_clubs"
        id = Field(Integer, primary_key=True)
        founder_id = Field(Integer, references=Author)

    assert BookClub.founder.target is Author
    assert Author._meta.relations.pop("book_club_set").target is BookClub  # the default name, snake_case
    delattr(Author, "book_club_set")
    for model in (Loan, BookClub):
        chakra.models._REGISTRY.remove(model)


def test_relation_keywords_are_checked() -> None:
    with pytest.raises(ValueError, match='relation= needs references= a model class or "self"'):
        Field(Integer, relation="owner")
    with pytest.raises(ValueError, match='related_name= needs references= a model class or "self"'):
        Field(Integer, references="pf_shelves.id", related_name="books")
    with pytest.raises(ValueError, match="relation= takes an identifier, got 'the owner'"):
        Field(Integer, references=Author, relation="the owner")
    with pytest.raises(ValueError, match=r'related_name= takes an identifier or "\+", got \'-\''):
        Field(Integer, references=Author, related_name="-")


def test_relation_name_clashes_are_type_errors_at_class_definition() -> None:
    before = dict(Author._meta.relations)
    with raises(TypeError, f"Clash.author_id: its relation Clash.author clashes with the field Clash.author; {NAME_RELATION}"):

        class Clash(Model):
            id = Field(Integer, primary_key=True)
            author = Field(String(10))
            author_id = Field(Integer, references=Author, related_name="clashes")

    with raises(TypeError, f"Poem.author_id: its relation Author.name clashes with the field Author.name; {NAME_RELATED}"):

        class Poem(Model):
            id = Field(Integer, primary_key=True)
            author_id = Field(Integer, references=Author, related_name="name")

    with raises(
        TypeError,
        f"Essay.author_id: its relation Author.books clashes with the relation Author.books of Book.author_id; {NAME_RELATED}",
    ):

        class Essay(Model):
            id = Field(Integer, primary_key=True)
            author_id = Field(Integer, references=Author, related_name="books")

    # Two foreign keys to one model: their default reverse names are the same.
    with raises(
        TypeError,
        "Letter.recipient_id: its relation Author.letter_set clashes with the relation Author.letter_set of "
        f"Letter.sender_id; {NAME_RELATED}",
    ):

        class Letter(Model):
            id = Field(Integer, primary_key=True)
            sender_id = Field(Integer, references=Author)
            recipient_id = Field(Integer, references=Author)

    with raises(
        TypeError,
        f"Draft.writer_id: its relation Draft.author clashes with the relation Draft.author of Draft.author_id; {NAME_RELATION}",
    ):

        class Draft(Model):
            id = Field(Integer, primary_key=True)
            author_id = Field(Integer, references=Author, related_name="+")
            writer_id = Field(Integer, references=Author, relation="author", related_name="+")

    with pytest.raises(TypeError, match=r"its relation Author.objects cannot start with '_' or be one of"):

        class Note(Model):
            id = Field(Integer, primary_key=True)
            author_id = Field(Integer, references=Author, related_name="objects")

    with raises(
        TypeError,
        "Branch.parent_id: its relation Branch.parent clashes with the relation Branch.parent of Branch.parent_id; "
        + NAME_RELATED,
    ):

        class Branch(Model):
            id = Field(Integer, primary_key=True)
            parent_id = Field(Integer, nullable=True, references="self", related_name="parent")

    with pytest.raises(TypeError, match=r"its relation Chapter.book clashes with the attribute Chapter.book"):

        class Chapter(Model):
            id = Field(Integer, primary_key=True)
            book_id = Field(Integer, references=Book, related_name="+")

            def book(self) -> str:
                return "a method"

    # A refused class leaves nothing behind on the models it referred to, nor in the registry.
    assert Author._meta.relations == before
    assert not hasattr(Author, "clashes") and not hasattr(Author, "letter_set")
    refused = {"Clash", "Poem", "Essay", "Letter", "Draft", "Note", "Branch", "Chapter"}
    assert not [m for m in chakra.models.registered_models() if m.__module__ == __name__ and m.__name__ in refused]


def test_a_class_defined_again_takes_over_its_relations() -> None:
    class Team(Model):
        __tablename__ = "pf_teams"
        id = Field(Integer, primary_key=True)

    def declare() -> type[Model]:
        class Player(Model):
            __tablename__ = "pf_players"
            id = Field(Integer, primary_key=True)
            team_id = Field(Integer, references=Team, related_name="players")

        return Player

    first, second = declare(), declare()
    assert first is not second
    assert Team._meta.relations["players"].target is second
    assert Team.players is Team._meta.relations["players"]  # type: ignore[attr-defined]
    for model in (first, second):
        chakra.models._REGISTRY.remove(model)
    chakra.models._REGISTRY.remove(Team)


async def test_forward_relation_is_one_query_for_all_rows() -> None:
    with sent() as statements:
        books = await Book.objects.prefetch_related("author", "editor").order_by("id")
    assert statements.names == ["SELECT pf_books", "SELECT pf_authors", "SELECT pf_authors"]
    assert '"id" = ANY($1)' in statements.texts[1]
    assert [(b.title, b.author.name) for b in books] == [("a1", "Ann"), ("a2", "Ann"), ("b1", "Ben")]
    # One instance per loaded row, shared by the rows referring to it.
    assert books[0].author is books[1].author
    # A NULL key: None, loaded (no error).
    assert [b.editor.name if b.editor else None for b in books] == ["Ben", None, "Ann"]


async def test_reverse_relations_are_lists_in_primary_key_order() -> None:
    assert titles(await Book.objects.all()) == ["a2", "b1", "a1"], "the table's own order is not the key order"
    with sent() as statements:
        ann, ben, cid = await Author.objects.prefetch_related("books", "book_set").order_by("id")
    assert statements.names == ["SELECT pf_authors", "SELECT pf_books", "SELECT pf_books"]
    assert '"author_id" = ANY($1) ORDER BY "id" ASC' in statements.texts[1]
    assert titles(ann.books) == ["a1", "a2"]
    assert titles(ben.books) == ["b1"]
    assert cid.books == []
    # The default name, `<model>_set`, for editor_id (no related_name).
    assert titles(ann.book_set) == ["b1"] and titles(ben.book_set) == ["a1"] and cid.book_set == []
    assert ann.books is not ann.book_set and cid.books is not cid.book_set


async def test_self_reference_parent_and_children() -> None:
    with sent() as statements:
        nodes = await Node.objects.prefetch_related("parent", "children__children").order_by("id")
    assert statements.names == ["SELECT pf_nodes"] * 4
    by_label = {n.label: n for n in nodes}
    root, left, right, leaf = (by_label[label] for label in ("root", "left", "right", "leaf"))
    assert root.parent is None
    # Rows of their own outside a session (as Django's): equal, not the same objects.
    assert left.parent == root and left.parent.label == "root" and leaf.parent.label == "left"
    assert right.parent is left.parent
    assert [n.label for n in root.children] == ["left", "right"]
    assert [n.label for n in root.children[0].children] == ["leaf"]
    assert root.children[1].children == [] and leaf.children == []


async def test_nested_prefetch_is_one_query_per_level() -> None:
    with sent() as statements:
        books = await Book.objects.prefetch_related("author__books__reviews").order_by("id")
    assert statements.names == ["SELECT pf_books", "SELECT pf_authors", "SELECT pf_books", "SELECT pf_reviews"]
    ann = books[0].author
    assert titles(ann.books) == ["a1", "a2"]
    assert [r.stars for r in ann.books[0].reviews] == [5, 3]
    assert ann.books[1].reviews == []

    with sent() as statements:
        authors = await Author.objects.prefetch_related("books__reviews", "books").order_by("id")
    assert statements.names == ["SELECT pf_authors", "SELECT pf_books", "SELECT pf_reviews"]
    assert [[r.stars for b in a.books for r in b.reviews] for a in authors] == [[5, 3], [4], []]
    # A reverse relation's rows lead back by the forward one only if that was loaded too.
    with pytest.raises(chakra.ProgrammingError, match="Book.author was not loaded"):
        authors[0].books[0].author


@pytest.mark.parametrize("authors", [1, 40])
async def test_the_number_of_queries_does_not_grow_with_the_rows(authors: int) -> None:
    await Author.objects.delete()
    made = await Author.objects.bulk_create([Author(name=f"w{i}") for i in range(authors)])
    books = await Book.objects.bulk_create([Book(title=f"t{i}", author_id=a.id) for a in made for i in range(2)])
    await Review.objects.bulk_create([Review(book_id=b.id, stars=1) for b in books])
    with sent() as statements:
        loaded = await Author.objects.prefetch_related("books__reviews")
    assert statements.names == ["SELECT pf_authors", "SELECT pf_books", "SELECT pf_reviews"]
    assert len(loaded) == authors
    assert all(len(a.books) == 2 and all(len(b.reviews) == 1 for b in a.books) for a in loaded)


async def test_every_terminal_returning_instances_prefetches() -> None:
    qs = Book.objects.prefetch_related("author")
    with sent() as statements:
        first = await qs.order_by("id").first()
        last = await qs.last()
        got = await qs.get(title="b1")
        latest = await qs.latest("title")
        earliest = await qs.earliest("title")
        bulk = await qs.in_bulk()
        sliced = await qs.order_by("id")[1:2]
        found, created = await qs.get_or_create(title="a2", defaults={"author_id": 1})
    assert statements.names == ["SELECT pf_books", "SELECT pf_authors"] * 8
    assert first is not None and first.author.name == "Ann"
    assert last is not None and last.title == "b1" and last.author.name == "Ben"
    assert got.author.name == "Ben"
    assert latest.author.name == "Ben" and earliest.author.name == "Ann"
    assert sorted(b.author.name for b in bulk.values()) == ["Ann", "Ann", "Ben"]
    assert [(b.title, b.author.name) for b in sliced] == [("a2", "Ann")]
    assert not created and found.author.name == "Ann"
    # Refinements keep the prefetch; calls add up, each relation once; None forgets them.
    with sent() as statements:
        await qs.filter(title="a1").order_by("-id").prefetch_related("editor", "author")
        await qs.prefetch_related(None)
    assert statements.names == ["SELECT pf_books", "SELECT pf_authors", "SELECT pf_authors", "SELECT pf_books"]
    assert repr(qs.prefetch_related("editor")).endswith("prefetching author, editor>")


def test_sync_twins_prefetch() -> None:
    qs = Book.objects.prefetch_related("author__books")
    with sent() as statements:
        books = qs.order_by("id").all_sync()
        first = qs.order_by("id").first_sync()
        last = qs.last_sync()
        got = qs.get_sync(title="a2")
        latest = qs.latest_sync("title")
        bulk = qs.in_bulk_sync([1])
    assert statements.names == ["SELECT pf_books", "SELECT pf_authors", "SELECT pf_books"] * 6
    assert [(b.title, b.author.name) for b in books] == [("a1", "Ann"), ("a2", "Ann"), ("b1", "Ben")]
    assert titles(books[0].author.books) == ["a1", "a2"]
    assert first is not None and first.author.name == "Ann"
    assert last is not None and titles(last.author.books) == ["b1"]
    assert got.author.name == "Ann" and latest.author.name == "Ben"
    assert bulk[1].author.name == "Ann"


async def test_prefetch_runs_on_the_sessions_connection_and_transaction() -> None:
    async with Session() as session:
        async with session.begin():
            dee = Author(name="Dee")
            session.add(dee)
            await session.flush()
            await Book.objects.create(title="d1", author_id=dee.id)
            # Uncommitted: only this transaction's connection sees these rows.
            with sent() as statements:
                books = await Book.objects.filter(title="d1").prefetch_related("author__books")
            (book,) = books
            assert book.author is dee  # the session's instance (its identity map)
            assert book.author.books == [book]
            assert statements.names == ["SELECT pf_books", "SELECT pf_authors", "SELECT pf_books"]
            # Pending changes are flushed first, as before any query in a session.
            book.title = "d2"
            assert await Book.objects.filter(title="d2").prefetch_related("author") == [book]
            await session.rollback()
    assert await Author.objects.filter(name="Dee").count() == 0


def test_sync_prefetch_runs_in_the_session_transaction() -> None:
    with Session() as session:
        with session.begin():
            ann = Author.objects.get_sync(name="Ann")
            Book.objects.create_sync(title="a3", author_id=ann.id)
            (loaded,) = Author.objects.filter(id=ann.id).prefetch_related("books").all_sync()
            assert loaded is ann
            assert titles(ann.books) == ["a1", "a2", "a3"]
            session.rollback_sync()
    assert Book.objects.filter(title="a3").count_sync() == 0


async def test_no_rows_or_no_keys_send_no_extra_query() -> None:
    with sent() as statements:
        assert await Book.objects.filter(title="none").prefetch_related("author__books") == []
        assert await Book.objects.filter(title="none").prefetch_related("author").first() is None
    assert statements.names == ["SELECT pf_books", "SELECT pf_books"]
    with sent() as statements:
        books = await Book.objects.filter(editor_id=None).prefetch_related("editor__books")
    assert statements.names == ["SELECT pf_books"]
    assert [b.editor for b in books] == [None]
    with sent() as statements:
        (cid,) = await Author.objects.filter(name="Cid").prefetch_related("books__reviews")
    assert statements.names == ["SELECT pf_authors", "SELECT pf_books"]
    assert cid.books == []


async def test_unknown_relation_names_are_field_errors_before_any_sql() -> None:
    with sent() as statements:
        with raises(chakra.FieldError, "Book has no relation 'nope' to prefetch; its relations: author, editor, reviews"):
            Book.objects.filter(title="a1").prefetch_related("author", "nope")
        with raises(
            chakra.FieldError, "Author has no relation 'nope' in 'author__nope' to prefetch; its relations: books, book_set"
        ):
            Book.objects.prefetch_related("author__nope")
        with pytest.raises(chakra.FieldError, match=r"'author_id' is a field; its relation is 'author'"):
            Book.objects.prefetch_related("author_id")
        with pytest.raises(TypeError, match="takes relation names"):
            Book.objects.prefetch_related("author", None)
    assert statements.names == []


async def test_reading_a_relation_that_was_not_loaded_raises() -> None:
    with sent() as statements:
        book = await Book.objects.get(title="a1")
        author = await Author.objects.get(name="Ann")
        with raises(chakra.ProgrammingError, 'Book.author was not loaded: use Book.objects.prefetch_related("author")'):
            book.author
        with raises(chakra.ProgrammingError, 'Author.books was not loaded: use Author.objects.prefetch_related("books")'):
            author.books
        with pytest.raises(chakra.ProgrammingError, match="Book.editor was not loaded"):
            Book(title="new", author_id=author.id).editor
        # Loading one relation does not load the others.
        (loaded,) = await Book.objects.filter(title="a1").prefetch_related("editor")
        with pytest.raises(chakra.ProgrammingError, match="Book.author was not loaded"):
            loaded.author
    # Never a lazy query: two gets and the one prefetch.
    assert statements.names == ["SELECT pf_books", "SELECT pf_authors", "SELECT pf_books", "SELECT pf_authors"]


async def test_values_and_streams_refuse_prefetch() -> None:
    qs = Book.objects.prefetch_related("author")
    with sent() as statements:
        with raises(
            chakra.ProgrammingError,
            "values() does not prefetch: prefetch_related('author') on Book would be ignored; "
            "leave prefetch_related out, or load instances with all()",
        ):
            qs.values("title")
        with pytest.raises(chakra.ProgrammingError, match=r"^values_list\(\) does not prefetch"):
            qs.values_list("title", flat=True)
        with raises(
            chakra.ProgrammingError,
            "stream() does not prefetch: prefetch_related('author') on Book would be ignored; load the rows with "
            "all(), a slice at a time for many rows (qs[:1000], qs[1000:2000], …), or leave prefetch_related out",
        ):
            qs.stream()
        with pytest.raises(chakra.ProgrammingError, match=r"^stream\(\) does not prefetch"):
            async for _ in qs:
                pass
        with pytest.raises(chakra.ProgrammingError, match=r"^stream_sync\(\) does not prefetch"):
            qs.stream_sync(batch_size=2)
    assert statements.names == []
    assert await qs.prefetch_related(None).values_list("title", flat=True).order_by("id") == ["a1", "a2", "b1"]


async def test_assigning_a_forward_relation_sets_its_key() -> None:
    (book,) = await Book.objects.filter(title="a2").prefetch_related("author", "editor")
    ann, ben = book.author, await Author.objects.get(name="Ben")
    book.author = ben
    assert book.author_id == ben.id and book.author is ben
    book.editor = ann
    assert book.editor_id == ann.id and book.editor is ann
    book.editor = None
    assert book.editor_id is None and book.editor is None
    # Changing the key by hand makes the loaded row stale: an error, not the old row.
    book.author_id = ann.id
    with raises(
        chakra.ProgrammingError,
        f"Book.author was loaded for author_id={ben.id}, but author_id is now {ann.id}: load it again with "
        'Book.objects.prefetch_related("author"), or assign it',
    ):
        book.author
    with pytest.raises(TypeError, match="Book.author takes an instance of Author or None, got <Book"):
        book.author = book  # type: ignore[assignment]
    with pytest.raises(ValueError, match="cannot assign an unsaved Author to Book.author"):
        book.author = Author(name="Nobody")
    with raises(AttributeError, "Author.books cannot be assigned: set Book.author_id on each Book instead"):
        ann.books = []
    # Saved through a session like any change of the key.
    async with Session() as session:
        (book,) = await Book.objects.filter(title="a2").prefetch_related("author")
        book.author = ben
    assert (await Book.objects.get(title="a2")).author_id == ben.id


async def test_loaded_relations_survive_copies_and_pickling_and_refresh_forgets_them() -> None:
    (book,) = await Book.objects.filter(title="a1").prefetch_related("author__books")
    clone = pickle.loads(pickle.dumps(book))
    assert clone == book and repr(clone) == repr(book) == f"<Book id={book.id}>"
    assert clone.author.name == "Ann" and titles(clone.author.books) == ["a1", "a2"]
    shallow = copy.copy(book)
    assert shallow.author is book.author
    shallow.author = await Author.objects.get(name="Ben")
    assert book.author.name == "Ann", "the copy's assignment does not change the original"
    async with Session() as session:
        (held,) = await Book.objects.filter(title="a1").prefetch_related("author")
        held.title = "changed"
        await session.refresh(held)
        assert held.title == "a1"
        with pytest.raises(chakra.ProgrammingError, match="Book.author was not loaded"):
            held.author


def test_a_concrete_subclass_does_not_inherit_rows_referring_to_its_parent() -> None:
    class Translator(Author):
        __tablename__ = "pf_translators"

    assert "books" not in Translator._meta.relations
    with pytest.raises(AttributeError, match="Translator has no relation 'books'"):
        Translator(name="x").books
    with pytest.raises(chakra.FieldError, match="Translator has no relation 'books'"):
        Translator.objects.prefetch_related("books")
    chakra.models._REGISTRY.remove(Translator)


# ---------------------------------------------------------------------- subqueries


async def test_a_queryset_as_an_in_value_is_a_subquery_of_the_same_statement() -> None:
    with sent() as record:
        books = await Book.objects.filter(author_id__in=Author.objects.filter(name__startswith="A")).order_by("title")
    assert titles(books) == ["a1", "a2"]
    assert record.names == ["SELECT pf_books"]
    assert 'IN (SELECT "id" FROM "pf_authors" WHERE "name" LIKE $1' in record.texts[0]

    ben = Author.objects.filter(name="Ben")
    assert titles(await Book.objects.filter(author_id__in=ben.values("id"))) == ["b1"]
    assert titles(await Book.objects.filter(author_id__in=ben.values_list("id", flat=True))) == ["b1"]
    not_ben = Book.objects.exclude(author_id__in=ben).order_by("title")
    assert titles(await not_ben) == ["a1", "a2"]
    either = Book.objects.filter(chakra.Q(author_id__in=ben) | chakra.Q(title="a2")).order_by("title")
    assert titles(either.all_sync()) == ["a2", "b1"]


async def test_a_subquery_keeps_its_slice_filters_and_distinct() -> None:
    # The second author by name: Ben. Its order stays because the slice picks by it.
    second = Author.objects.order_by("name")[1:2]
    assert titles(await Book.objects.filter(author_id__in=second)) == ["b1"]
    edited = Book.objects.filter(editor_id__isnull=False).values("editor_id").distinct()
    editors = await Author.objects.filter(id__in=edited).order_by("name")
    assert [a.name for a in editors] == ["Ann", "Ben"]
    # Writes by query take subqueries too.
    anns = Book.objects.filter(author_id__in=Author.objects.filter(name="Ann"))
    assert await Review.objects.filter(book_id__in=anns).count() == 2
    assert await Review.objects.filter(book_id__in=anns).delete() == 2
    assert await Review.objects.count() == 1


async def test_subqueries_that_cannot_work_are_field_errors_before_any_sql() -> None:
    authors = Author.objects.all()
    two_fields = "a subquery selects one field: values('id', 'name') cannot be the value of an __in lookup"
    other_type = "`Book.title__in` takes a queryset of values of its type (varchar), not of Author.id (int4)"
    not_in = "lookup `author_id__exact` takes a value, not a queryset (only `author_id__in` takes one)"
    with sent() as record:
        with raises(chakra.FieldError, two_fields):
            Book.objects.filter(author_id__in=authors.values("id", "name"))
        with raises(chakra.FieldError, other_type):
            Book.objects.filter(title__in=authors)
        with raises(chakra.FieldError, not_in):
            Book.objects.filter(author_id=authors)
        with raises(chakra.FieldError, "unknown field `nope` on `pf_authors` (fields: id, name)"):
            Book.objects.filter(author_id__in=authors.values("nope"))
    assert record.names == []


async def test_lookups_span_relations_as_subqueries() -> None:
    with sent() as record:
        books = await Book.objects.filter(author__name="Ann").order_by("title")
    assert titles(books) == ["a1", "a2"]
    assert record.names == ["SELECT pf_books"]
    assert '"author_id" IN (SELECT "id" FROM "pf_authors" WHERE "name" = $1)' in record.texts[0]
    assert await Review.objects.filter(book__author__name="Ann").count() == 2, "two relations deep"
    either = Book.objects.filter(chakra.Q(author__name="Ben") | chakra.Q(title="a2")).order_by("title")
    assert titles(await either) == ["a2", "b1"]
    # Excluding keeps the rows whose key is NULL, as in Django.
    assert titles(await Book.objects.exclude(editor__name="Ben").order_by("title")) == ["a2", "b1"]


async def test_a_relation_compared_with_rows_or_keys_uses_the_key_itself() -> None:
    ann = await Author.objects.get(name="Ann")
    with sent() as record:
        assert titles(await Book.objects.filter(author=ann).order_by("title")) == ["a1", "a2"]
        assert titles(await Book.objects.filter(author__id=ann.id).order_by("title")) == ["a1", "a2"]
        assert titles(await Book.objects.filter(author__pk__in=[ann.id]).order_by("title")) == ["a1", "a2"]
        assert titles(await Book.objects.filter(author__in=[ann]).order_by("title")) == ["a1", "a2"]
        assert titles(Book.objects.filter(editor__isnull=True).all_sync()) == ["a2"]
    assert not any("SELECT \"id\" FROM \"pf_authors\"" in text for text in record.texts), record.texts


async def test_lookups_on_one_reverse_relation_in_one_call_hold_for_the_same_row() -> None:
    ben = await Author.objects.get(name="Ben")
    assert [a.name for a in await Author.objects.filter(books__title__startswith="b")] == ["Ben"]
    # Ann wrote a1 (edited by Ben) and a2 (no editor): no one book of hers is both.
    same_book = Author.objects.filter(books__title="a2", books__editor_id=ben.id)
    assert await same_book.count() == 0
    # Separate filter() calls may be met by different books, as in Django.
    any_books = Author.objects.filter(books__title="a2").filter(books__editor_id=ben.id)
    assert [a.name for a in await any_books] == ["Ann"]
    either = Author.objects.filter(chakra.Q(books__title="b1") | chakra.Q(books__title="a2")).order_by("name")
    assert [a.name for a in await either] == ["Ann", "Ben"]


def test_a_reverse_relation_compares_its_rows_keys_and_asks_whether_there_are_any() -> None:
    a2 = Book.objects.get_sync(title="a2")
    b1 = Book.objects.get_sync(title="b1")
    names = lambda qs: sorted(qs.values_list("name", flat=True).all_sync())  # noqa: E731
    assert names(Author.objects.filter(books=a2)) == ["Ann"]
    assert names(Author.objects.filter(books__in=[a2, b1.id])) == ["Ann", "Ben"]
    assert names(Author.objects.filter(books__isnull=True)) == ["Cid"]
    assert names(Author.objects.filter(books__isnull=False)) == ["Ann", "Ben"]
    assert names(Author.objects.exclude(books__isnull=True)) == ["Ann", "Ben"]
    # Django's: the lookups of one filter() call hold for the same book.
    assert names(Author.objects.filter(books=a2, books__title="a1")) == []


def test_lookups_across_relations_that_cannot_work_are_field_errors() -> None:
    with pytest.raises(chakra.FieldError, match="unknown field `nme` on `pf_authors`"):
        Book.objects.filter(author__nme="Ann")


async def test_aggregate_filters_span_relations() -> None:
    by_ann = chakra.Count("*", filter=chakra.Q(author__name="Ann"))
    assert await Book.objects.aggregate(n=chakra.Count("*"), by_ann=by_ann) == {"n": 3, "by_ann": 2}
    edited_by_ben = chakra.Count("*", filter=chakra.Q(editor__name="Ben"))
    per_author = Book.objects.values("author_id").annotate(edited_by_ben=edited_by_ben)
    counts = {row["author_id"]: row["edited_by_ben"] for row in await per_author}
    ann, ben = await Author.objects.get(name="Ann"), await Author.objects.get(name="Ben")
    assert counts == {ann.id: 1, ben.id: 0}


# ---------------------------------------------------------------------- Prefetch


async def test_a_prefetch_queryset_filters_and_orders_the_related_rows() -> None:
    newest_first = Book.objects.filter(title__startswith="a").order_by("-title")
    with sent() as record:
        authors = await Author.objects.order_by("name").prefetch_related(chakra.Prefetch("books", newest_first))
    assert [(a.name, titles(a.books)) for a in authors] == [("Ann", ["a2", "a1"]), ("Ben", []), ("Cid", [])]
    assert record.names == ["SELECT pf_authors", "SELECT pf_books"]
    # Its own prefetches go on from the rows it loaded; a plain name for the same
    # relation keeps the queryset.
    with_reviews = Book.objects.filter(title="a1").prefetch_related("reviews")
    ann = await Author.objects.prefetch_related(chakra.Prefetch("books", with_reviews), "books").get(name="Ann")
    assert titles(ann.books) == ["a1"]
    assert sorted(r.stars for r in ann.books[0].reviews) == [3, 5]
    # Forward: a row the queryset leaves out is None.
    only_ben = chakra.Prefetch("author", Author.objects.filter(name="Ben"))
    books = Book.objects.order_by("title").prefetch_related(only_ben).all_sync()
    assert [(b.title, b.author and b.author.name) for b in books] == [("a1", None), ("a2", None), ("b1", "Ben")]


def test_prefetch_objects_that_cannot_work_are_refused_before_any_sql() -> None:
    with raises(TypeError, "Prefetch('books') loads Book rows, not Author: give it a Book queryset"):
        Author.objects.prefetch_related(chakra.Prefetch("books", Author.objects.all()))
    sliced = "Prefetch('books') cannot take a sliced queryset: its limit would apply to the rows of every key together"
    with raises(chakra.ProgrammingError, sliced):
        chakra.Prefetch("books", Book.objects.all()[:2])
    twice = [chakra.Prefetch("books", Book.objects.all()), chakra.Prefetch("books", Book.objects.all())]
    with raises(ValueError, "'books' is prefetched twice, with two querysets: give it once"):
        Author.objects.prefetch_related(*twice)
    with pytest.raises(chakra.FieldError, match="Author has no relation 'nope'"):
        Author.objects.prefetch_related(chakra.Prefetch("nope"))


async def test_constructors_take_forward_relations_as_django_does() -> None:
    ann = await Author.objects.get(name="Ann")
    draft = Book(title="c1", author=ann)
    assert draft.author_id == ann.id and draft.author is ann
    created = await Book.objects.create(title="c2", author=ann, editor=None)
    assert created.author_id == ann.id and created.editor_id is None
    assert (await Book.objects.get(title="c2")).author_id == ann.id
    found, made = await Book.objects.get_or_create(title="a1", author=ann)
    assert not made and found.title == "a1"
    with raises(TypeError, "Book() got both 'author' and 'author_id': give one"):
        Book(title="c3", author=ann, author_id=ann.id)
    with pytest.raises(TypeError, match="Author\\(\\) got an unexpected field 'books'"):
        Author(name="Dee", books=[])
    with pytest.raises(TypeError, match="Book.author takes an instance of Author or None"):
        Book(title="c4", author=ann.id)


async def test_select_related_loads_forward_relations_in_the_rows_own_statement() -> None:
    with sent() as record:
        reviews = await Review.objects.select_related("book__author").order_by("stars")
    got = [(r.stars, r.book.title, r.book.author.name) for r in reviews]
    assert got == [(3, "a1", "Ann"), (4, "b1", "Ben"), (5, "a1", "Ann")]
    assert record.names == ["SELECT pf_reviews"]
    (text,) = record.texts
    assert 'LEFT JOIN "pf_books"' in text and 'LEFT JOIN "pf_authors"' in text
    assert text.endswith('ORDER BY "pf_reviews"."stars" ASC')
    # A NULL key is None, and the row stays.
    books = await Book.objects.select_related("editor").order_by("title")
    assert [(b.title, b.editor and b.editor.name) for b in books] == [("a1", "Ben"), ("a2", None), ("b1", "Ann")]
    # Calls add up; a path shared by two names is joined once.
    both = Review.objects.select_related("book").select_related("book__author", "book__editor")
    assert both.sql()[0].count("LEFT JOIN") == 3
    assert [r.book.editor and r.book.editor.name for r in await both.order_by("stars")] == ["Ben", "Ann", "Ben"]


async def test_select_related_keeps_the_rows_window_order_and_annotations() -> None:
    qs = Review.objects.select_related("book__author").order_by("-stars")
    assert [(r.stars, r.book.author.name) for r in await qs[1:3]] == [(4, "Ben"), (3, "Ann")]
    assert (await qs.first()).stars == 5  # type: ignore[union-attr]
    last = await qs.last()
    assert last is not None and last.book.title == "a1"
    got = await qs.get(stars=4)
    assert got.book.author.name == "Ben"
    # Counts and values leave the joins out.
    a1, b1 = (await Book.objects.get(title="a1")).id, (await Book.objects.get(title="b1")).id
    with sent() as record:
        assert await qs.count() == 3 and await qs.exists()
        assert await qs.values_list("stars", flat=True) == [5, 4, 3]
        assert await qs.values("stars", "book_id") == [
            {"stars": 5, "book_id": a1},
            {"stars": 4, "book_id": b1},
            {"stars": 3, "book_id": a1},
        ]
    assert len(record.texts) == 4 and not any("JOIN" in text for text in record.texts)
    # Annotations, and filters on them, are the rows' own.
    reviewed = Book.objects.annotate(n=chakra.Count("reviews")).select_related("author").filter(n__gte=1)
    assert sorted((b.title, b.n, b.author.name) for b in await reviewed) == [("a1", 2, "Ann"), ("b1", 1, "Ben")]
    # Streams load them too.
    streamed = [(b.title, b.author.name) async for b in Book.objects.select_related("author").order_by("title").stream()]
    assert streamed == [("a1", "Ann"), ("a2", "Ann"), ("b1", "Ben")]


async def test_select_related_through_a_self_reference_stops_where_the_rows_do() -> None:
    nodes = await Node.objects.select_related("parent__parent").order_by("id")
    assert [(n.label, n.parent and n.parent.label) for n in nodes] == [
        ("root", None),
        ("left", "root"),
        ("right", "root"),
        ("leaf", "left"),
    ]
    leaf, left = nodes[3], nodes[1]
    assert leaf.parent.parent.label == "root"
    assert left.parent.parent is None


async def test_select_related_with_no_names_follows_every_non_nullable_key() -> None:
    (review, *_) = await Review.objects.select_related().order_by("stars")
    assert (review.book.title, review.book.author.name) == ("a1", "Ann")
    # `editor_id` is nullable: not followed, so not loaded.
    with pytest.raises(chakra.ProgrammingError, match="Book.editor was not loaded"):
        review.book.editor  # noqa: B018
    # None forgets them.
    plain = Review.objects.select_related("book").select_related(None)
    assert "JOIN" not in plain.sql()[0]
    (review, *_) = await plain.order_by("stars")
    with pytest.raises(chakra.ProgrammingError, match="Review.book was not loaded"):
        review.book  # noqa: B018


async def test_select_related_in_a_session_goes_through_its_identity_maps() -> None:
    async with Session():
        ann = await Author.objects.get(name="Ann")
        reviews = await Review.objects.select_related("book__author").order_by("stars")
        assert reviews[0].book is reviews[2].book
        assert reviews[0].book.author is ann
        # Locking takes the rows' own locks (the session's transaction begins for it).
        locked = await Review.objects.select_for_update().select_related("book").order_by("stars")
        assert [r.book.title for r in locked] == ["a1", "b1", "a1"]
        assert locked[0].book is reviews[0].book


def test_sync_twins_select_related() -> None:
    books = Book.objects.select_related("author").order_by("title").all_sync()
    assert [b.author.name for b in books] == ["Ann", "Ann", "Ben"]
    assert Book.objects.select_related("author").get_sync(title="b1").author.name == "Ben"
    first = Book.objects.select_related("author").order_by("-title").first_sync()
    assert first is not None and first.author.name == "Ben"
    streamed = [b.author.name for b in Book.objects.select_related("author").order_by("title").stream_sync()]
    assert streamed == ["Ann", "Ann", "Ben"]


async def test_prefetch_below_a_joined_relation_reuses_its_rows() -> None:
    with sent() as record:
        reviews = await Review.objects.select_related("book__author").prefetch_related("book__author__books").order_by(
            "stars"
        )
    assert record.names == ["SELECT pf_reviews", "SELECT pf_books"]
    assert [titles(r.book.author.books) for r in reviews] == [["a1", "a2"], ["b1"], ["a1", "a2"]]
    # A prefetch's queryset joins its own relations.
    edited = chakra.Prefetch("books", Book.objects.select_related("editor"))
    with sent() as record:
        authors = await Author.objects.order_by("name").prefetch_related(edited)
    assert record.names == ["SELECT pf_authors", "SELECT pf_books"]
    assert [[b.editor and b.editor.name for b in a.books] for a in authors] == [["Ben", None], ["Ann"], []]


async def test_select_related_that_cannot_work_is_refused_before_any_sql() -> None:
    reverse = "select_related('books'): Author.books is a reverse relation (many rows); use prefetch_related(\"books\")"
    with raises(chakra.FieldError, reverse):
        Author.objects.select_related("books")
    with raises(chakra.FieldError, "Book has no relation 'nope' to join; its relations: author, editor, reviews"):
        Book.objects.select_related("nope")
    field = "Book has no relation 'author_id' to join ('author_id' is a field; its relation is 'author')"
    with pytest.raises(chakra.FieldError, match=re.escape(field)):
        Book.objects.select_related("author_id")
    with pytest.raises(TypeError, match="select_related\\(\\) takes relation names"):
        Book.objects.select_related(Book.author)  # type: ignore[arg-type]
    # A key changed after loading says so rather than answer with the old row.
    book = await Book.objects.select_related("author").get(title="a1")
    book.author_id = book.author.id + 1
    with pytest.raises(chakra.ProgrammingError, match="was loaded for author_id="):
        book.author  # noqa: B018


async def test_a_prefetch_to_an_attribute_sits_beside_the_relation() -> None:
    recent = chakra.Prefetch("books", Book.objects.filter(title__endswith="2"), to_attr="recent")
    with sent() as record:
        authors = await Author.objects.order_by("name").prefetch_related(recent, "books")
    assert [(a.name, titles(a.recent), titles(a.books)) for a in authors] == [
        ("Ann", ["a2"], ["a1", "a2"]),
        ("Ben", [], ["b1"]),
        ("Cid", [], []),
    ]
    assert record.names == ["SELECT pf_authors", "SELECT pf_books", "SELECT pf_books"]
    # Forward, nested below a relation, and with the queryset's own prefetches.
    only_ann = chakra.Prefetch("book__author", Author.objects.filter(name="Ann"), to_attr="ann")
    reviews = await Review.objects.order_by("stars").prefetch_related(only_ann)
    assert [(r.stars, r.book.title, r.book.ann and r.book.ann.name) for r in reviews] == [
        (3, "a1", "Ann"),
        (4, "b1", None),
        (5, "a1", "Ann"),
    ]
    with_reviews = chakra.Prefetch("books", Book.objects.prefetch_related("reviews"), to_attr="shelf")
    (ann,) = await Author.objects.filter(name="Ann").prefetch_related(with_reviews)
    assert [len(b.reviews) for b in ann.shelf] == [2, 0]
    for taken in ("name", "book_set"):
        message = f"Prefetch(to_attr={taken!r}) names a field, relation or attribute of Author: name it otherwise"
        with raises(chakra.FieldError, message):
            Author.objects.prefetch_related(chakra.Prefetch("books", to_attr=taken))
    with raises(ValueError, "Prefetch(to_attr=) takes an identifier, got 'not one'"):
        chakra.Prefetch("books", to_attr="not one")


async def test_order_by_a_field_of_the_row_a_foreign_key_leads_to() -> None:
    async def listed(qs: Any) -> list[str]:
        return [b.title for b in await qs]

    assert await listed(Book.objects.order_by("author__name", "title")) == ["a1", "a2", "b1"]
    assert await listed(Book.objects.order_by("-author__name", "title")) == ["b1", "a1", "a2"]
    # A NULL key sorts as NULL: last ascending.
    assert await listed(Book.objects.order_by("editor__name")) == ["b1", "a1", "a2"]
    # Two relations on, and the window picks by it.
    reviews = await Review.objects.order_by("-book__author__name", "stars")
    assert [(r.stars) for r in reviews] == [4, 3, 5]
    assert await listed(Book.objects.order_by("-author__name", "-title")[1:2]) == ["a2"]
    last = await Book.objects.order_by("author__name", "title").last()
    assert last is not None and last.title == "b1"
    # Through a self-reference: children by their parent's label, the root (no parent) last.
    assert [n.label for n in await Node.objects.order_by("parent__label", "label")] == ["leaf", "left", "right", "root"]
    # With joins, annotations and their filters, and values.
    joined = Book.objects.select_related("author").order_by("-author__name", "title")[:2]
    assert [(b.title, b.author.name) for b in await joined] == [("b1", "Ben"), ("a1", "Ann")]
    reviewed = Book.objects.annotate(n=chakra.Count("reviews")).filter(n__gte=1).order_by("-author__name")
    assert [(b.title, b.n) for b in await reviewed] == [("b1", 1), ("a1", 2)]
    assert await Book.objects.order_by("-author__name", "title").values_list("title", flat=True) == ["b1", "a1", "a2"]


def test_orders_across_relations_that_cannot_work_are_field_errors() -> None:
    # Instances would repeat, once per book (values() reads a row per book instead).
    many = "the rows are ordered by `books__title`, across a relation holding many rows"
    with pytest.raises(chakra.FieldError, match=re.escape(many)):
        Author.objects.order_by("books__title").all_sync()
    with pytest.raises(chakra.FieldError, match="unknown field `nope` on `pf_authors`"):
        Book.objects.order_by("author__nope")
    distinct = "distinct() rows are ordered by `author__name`, a value they do not hold"
    with pytest.raises(chakra.FieldError, match=re.escape(distinct)):
        Book.objects.distinct().order_by("author__name").all_sync()
    with pytest.raises(chakra.FieldError, match="Author has no relation 'nope' in 'author__nope' to sort by"):
        Book.objects.order_by("author__nope__name")


async def test_values_read_fields_of_the_rows_foreign_keys_lead_to() -> None:
    rows = await Book.objects.order_by("title").values("title", "author__name", "editor__name")
    assert rows == [
        {"title": "a1", "author__name": "Ann", "editor__name": "Ben"},
        {"title": "a2", "author__name": "Ann", "editor__name": None},
        {"title": "b1", "author__name": "Ben", "editor__name": "Ann"},
    ]
    pairs = await Review.objects.order_by("stars").values_list("stars", "book__author__name")
    assert pairs == [(3, "Ann"), (4, "Ben"), (5, "Ann")]
    names = Book.objects.values_list("author__name", flat=True).distinct().order_by("author__name")
    assert await names == ["Ann", "Ben"]
    # Filtered and ordered by, in one statement.
    with sent() as record:
        bens = await Book.objects.values("title", "author__name").filter(author__name="Ben")
    assert bens == [{"title": "b1", "author__name": "Ben"}] and len(record.names) == 1
    # Groups by them: a row per author, and per author and editor.
    per_author = Book.objects.values("author__name").annotate(n=chakra.Count("*")).order_by("-n", "author__name")
    assert await per_author == [{"author__name": "Ann", "n": 2}, {"author__name": "Ben", "n": 1}]
    assert await per_author.filter(n__gt=1) == [{"author__name": "Ann", "n": 2}]
    pairs = Book.objects.values_list("author__name", "editor__name").annotate(n=chakra.Count("*"))
    assert sorted(await pairs.order_by("author__name"), key=str) == [("Ann", "Ben", 1), ("Ann", None, 1), ("Ben", "Ann", 1)]
    async with Session():
        locked = Book.objects.select_for_update().values("author__name").annotate(n=chakra.Count("*"))
        assert await locked.order_by("author__name") == [{"author__name": "Ann", "n": 2}, {"author__name": "Ben", "n": 1}]
    other = "cannot group an annotated queryset by other values than its annotations"
    with pytest.raises(chakra.ProgrammingError, match=other):
        await Book.objects.annotate(r=chakra.Count("reviews")).values("title").annotate(n=chakra.Count("*"))
    # A forward relation's own name reads its key, as in Django: a row per author.
    ann, ben = (await Author.objects.get(name="Ann")).id, (await Author.objects.get(name="Ben")).id
    per_key = Book.objects.values("author").annotate(n=chakra.Count("*")).order_by("author")
    assert await per_key == [{"author": ann, "n": 2}, {"author": ben, "n": 1}]
    assert await Book.objects.order_by("title").values_list("editor", flat=True) == [ben, None, ann]
    # Across a relation holding many rows: a row per row reached, as Django's join.
    titles = Author.objects.order_by("name", "books__title").values_list("name", "books__title")
    assert await titles == [("Ann", "a1"), ("Ann", "a2"), ("Ben", "b1"), ("Cid", None)]
    with pytest.raises(chakra.FieldError, match="unknown field `nope` on `pf_authors`"):
        Book.objects.values("author__nope")
