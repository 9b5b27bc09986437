//! Loading related rows (`Query::load_one`, `Query::load_many`, `Query::select_related`): one
//! query for all the rows, or one statement, each row matched to its own related rows, NULL
//! keys matching nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chakra::prelude::*;
use chakra::{Request, Response};
use futures::TryStreamExt;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

use crate::models::{cleanup, db_with};

#[derive(Model, Debug, Clone, PartialEq)]
#[chakra(table = "rel_authors")]
pub struct Author {
    #[chakra(primary_key)]
    pub id: i64,
    pub name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[chakra(table = "rel_books")]
pub struct Book {
    #[chakra(primary_key)]
    pub id: i64,
    pub title: String,
    #[chakra(references = "rel_authors.id")]
    pub author_id: Option<i64>,
    pub rating: f64,
}

/// Ada wrote "Notes" and "Engines", nobody wrote "Anonymous", Bob wrote nothing; on a
/// pool counting the statements that reach it (zero once the rows are in).
async fn library() -> (Pool, String, Arc<AtomicUsize>) {
    let statements = Arc::new(AtomicUsize::new(0));
    let counter = statements.clone();
    let count = tower::layer::layer_fn(move |inner: BoxCloneSyncService<Request, Response, Error>| {
        let counter = counter.clone();
        inner.map_request(move |request: Request| {
            counter.fetch_add(1, Ordering::SeqCst);
            request
        })
    });
    let (pool, schema) = db_with(|builder| builder.layer(count)).await;
    Author::create_table(&pool).await.unwrap();
    Book::create_table(&pool).await.unwrap();
    let authors = [("Ada"), ("Bob")].map(|name| Author { id: 0, name: name.into() });
    let authors = Author::insert_all(&pool, authors.to_vec()).await.unwrap();
    let book = |title: &str, author_id| Book { id: 0, title: title.into(), author_id, rating: 4.5 };
    let ada = Some(authors[0].id);
    Book::insert_all(&pool, vec![book("Notes", ada), book("Anonymous", None), book("Engines", ada)]).await.unwrap();
    statements.store(0, Ordering::SeqCst);
    (pool, schema, statements)
}

fn names(authors: &[Option<Author>]) -> Vec<Option<&str>> {
    authors.iter().map(|a| a.as_ref().map(|a| a.name.as_str())).collect()
}

fn titles(books: &[Vec<Book>]) -> Vec<Vec<&str>> {
    books.iter().map(|group| group.iter().map(|b| b.title.as_str()).collect()).collect()
}

/// Each book gets its author, or `None` for a NULL key or an author the query leaves
/// out, in one query; books sharing an author get equal copies.
#[tokio::test]
async fn load_one_gives_each_row_its_parent_in_one_query() {
    let (pool, schema, statements) = library().await;
    let books = Book::query().order_by(Book::id().asc()).all(&pool).await.unwrap();
    statements.store(0, Ordering::SeqCst);

    let authors = Author::query().load_one(&pool, &books, Book::author_id(), Author::id()).await.unwrap();
    assert_eq!(statements.load(Ordering::SeqCst), 1, "one query for every book");
    assert_eq!(names(&authors), [Some("Ada"), None, Some("Ada")]);
    assert_eq!(authors[0], authors[2]);

    let not_ada = Author::query().exclude(Author::name().eq("Ada"));
    let authors = not_ada.load_one(&pool, &books, Book::author_id(), Author::id()).await.unwrap();
    assert_eq!(names(&authors), [None, None, None], "the query's filter applies");

    // The other way round, a one-to-one reading of a one-to-many key: Ada has two books.
    let authors = Author::query().all(&pool).await.unwrap();
    let err = Book::query().load_one(&pool, &authors, Author::id(), Book::author_id()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MultipleFound, "{err:?}");
    assert!(err.message().contains("rel_books") && err.message().contains("author_id"), "{err}");
    cleanup(schema).await;
}

/// Each author gets their books in the query's order (none for Bob), in one query;
/// a row listed twice gets its books twice.
#[tokio::test]
async fn load_many_gives_each_row_its_children_in_one_query() {
    let (pool, schema, statements) = library().await;
    let mut authors = Author::query().order_by(Author::name().asc()).all(&pool).await.unwrap();
    authors.push(authors[0].clone());
    statements.store(0, Ordering::SeqCst);

    let by_title = Book::query().order_by(Book::title().asc());
    let books = by_title.load_many(&pool, &authors, Author::id(), Book::author_id()).await.unwrap();
    assert_eq!(statements.load(Ordering::SeqCst), 1, "one query for every author");
    assert_eq!(titles(&books), [vec!["Engines", "Notes"], vec![], vec!["Engines", "Notes"]]);

    let by_title_desc = Book::query().filter(Book::rating().gt(4.0)).order_by(Book::title().desc());
    let books = by_title_desc.load_many(&pool, &authors[..1], Author::id(), Book::author_id()).await.unwrap();
    assert_eq!(titles(&books), [vec!["Notes", "Engines"]], "the query's filter and order apply");
    cleanup(schema).await;
}

/// Nothing to match sends nothing: no rows, or only NULL keys.
#[tokio::test]
async fn rows_without_keys_send_no_query() {
    let (pool, schema, statements) = library().await;
    let anonymous = Book::query().filter(Book::author_id().is_null()).all(&pool).await.unwrap();
    statements.store(0, Ordering::SeqCst);

    let authors = Author::query().load_one(&pool, &anonymous, Book::author_id(), Author::id()).await.unwrap();
    assert_eq!(names(&authors), [None]);
    let none = Author::query().load_one(&pool, &[], Book::author_id(), Author::id()).await.unwrap();
    assert!(none.is_empty());
    let books = Book::query().load_many(&pool, &[], Author::id(), Book::author_id()).await.unwrap();
    assert!(books.is_empty());
    assert_eq!(statements.load(Ordering::SeqCst), 0);
    cleanup(schema).await;
}

/// Mistakes are typed errors sent before any SQL: a limited query (its limit would apply
/// to all keys together) and a key column of a type keys cannot have.
#[tokio::test]
async fn a_limited_query_or_a_float_key_is_refused_before_any_sql() {
    let (pool, schema, statements) = library().await;
    let authors = Author::query().all(&pool).await.unwrap();
    let books = Book::query().all(&pool).await.unwrap();
    statements.store(0, Ordering::SeqCst);

    let limited = Book::query().limit(1);
    let err = limited.load_many(&pool, &authors, Author::id(), Book::author_id()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage, "{err:?}");
    assert!(err.message().contains("load_many") && err.message().contains("limit"), "{err}");

    let err = Book::query().load_many(&pool, &books, Book::rating(), Book::rating()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Field, "{err:?}");
    assert!(err.message().contains("rel_books.rating"), "{err}");
    assert_eq!(statements.load(Ordering::SeqCst), 0);
    cleanup(schema).await;
}

/// On a transaction the loads see its uncommitted rows.
#[tokio::test]
async fn loads_run_on_a_transaction() {
    let (pool, schema, _) = library().await;
    let tx = pool.begin().await.unwrap();
    let mut cy = Author { id: 0, name: "Cy".into() };
    cy.insert(&tx).await.unwrap();
    let mut draft = Book { id: 0, title: "Draft".into(), author_id: Some(cy.id), rating: 1.0 };
    draft.insert(&tx).await.unwrap();

    let authors = Author::query().load_one(&tx, &[draft], Book::author_id(), Author::id()).await.unwrap();
    assert_eq!(names(&authors), [Some("Cy")]);
    let books = Book::query().load_many(&tx, &[cy], Author::id(), Book::author_id()).await.unwrap();
    assert_eq!(titles(&books), [vec!["Draft"]]);
    tx.rollback().await.unwrap();
    cleanup(schema).await;
}

/// A column among the values of another query, sent as one statement: in filters, counts
/// and writes by query. `NOT IN` over values holding a `NULL` matches nothing, as in SQL.
#[tokio::test]
async fn a_filter_takes_another_querys_values_as_a_subquery() {
    let (pool, schema, statements) = library().await;
    let a_names = Author::query().filter(Author::name().starts_with("A")).select(Author::id());
    let books = Book::query().filter(Book::author_id().is_in_query(a_names)).order_by(Book::title().asc());
    let titles: Vec<String> = books.all(&pool).await.unwrap().into_iter().map(|b| b.title).collect();
    assert_eq!(titles, ["Engines", "Notes"]);
    assert_eq!(statements.load(Ordering::SeqCst), 1, "one statement");

    let authored = Book::query().filter(Book::author_id().is_not_null()).select(Book::author_id()).distinct();
    let idle = Author::query().filter(Author::id().is_not_in_query(authored)).all(&pool).await.unwrap();
    assert_eq!(idle.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["Bob"]);
    let with_null = Book::query().select(Book::author_id());
    let none = Author::query().filter(Author::id().is_not_in_query(with_null)).count(&pool).await.unwrap();
    assert_eq!(none, 0, "NOT IN over a NULL is unknown for every row");

    // The subquery's limit keeps its order: the author with the alphabetically last name.
    let last = Author::query().order_by(Author::name().desc()).limit(1).select(Author::id());
    let count = Book::query().filter(Book::author_id().is_in_query(last)).count(&pool).await.unwrap();
    assert_eq!(count, 0, "Bob wrote nothing");

    let ada = Author::query().filter(Author::name().eq("Ada")).select(Author::id());
    let adas = Book::query().filter(Book::author_id().is_in_query(ada));
    let rated = adas.update(&pool, vec![Book::rating().set(5.0)]).await.unwrap();
    assert_eq!(rated, 2);
    assert_eq!(Book::query().filter(Book::rating().eq(5.0)).count(&pool).await.unwrap(), 2);
    let bob = Author::query().filter(Author::name().eq("Bob")).select(Author::id());
    let gone = Author::query().filter(Author::id().is_in_query(bob)).delete(&pool).await.unwrap();
    assert_eq!(gone, 1);
    assert_eq!(Author::query().count(&pool).await.unwrap(), 1);
    cleanup(schema).await;
}

/// Subqueries asked about each row (`EXISTS`, a value of the first row), naming it
/// through `outer()`.
#[tokio::test]
async fn correlated_subqueries_ask_about_each_row() {
    use chakra::models::func;
    let (pool, schema, statements) = library().await;
    let books_of = || Book::query().filter(Book::author_id().eq(Author::id().outer()));
    let names = |authors: Vec<Author>| authors.into_iter().map(|a| a.name).collect::<Vec<_>>();
    let writers = Author::query().filter(func::exists(books_of())).all(&pool).await.unwrap();
    assert_eq!(names(writers), ["Ada"]);
    let idle = Author::query().filter(func::not_exists(books_of())).all(&pool).await.unwrap();
    assert_eq!(names(idle), ["Bob"]);
    assert_eq!(statements.load(Ordering::SeqCst), 2, "one statement each");
    // The title of each author's first book by title, None for Bob.
    let first = func::first(books_of().order_by(Book::title().asc()).limit(1).select(Book::title()));
    let rows = Author::query().order_by(Author::name().asc()).annotate(first).all(&pool).await.unwrap();
    let firsts: Vec<(String, Option<String>)> = rows.into_iter().map(|(a, t)| (a.name, t)).collect();
    assert_eq!(firsts, [("Ada".to_owned(), Some("Engines".to_owned())), ("Bob".to_owned(), None)]);
    // A subquery over the same table, renamed so `outer()` reaches the outer row: the
    // authors sharing their name with another (both Adas once a second one comes).
    let namesake = || {
        let same_name = Author::name().eq(Author::name().outer()) & Author::id().ne(Author::id().outer());
        Author::query().filter(func::exists(Author::query().filter(same_name)))
    };
    assert_eq!(namesake().count(&pool).await.unwrap(), 0);
    Author { id: 0, name: "Ada".into() }.insert(&pool).await.unwrap();
    assert_eq!(namesake().count(&pool).await.unwrap(), 2);
    // Updates and deletes pick their rows by them too.
    let gone = Author::query().filter(func::not_exists(books_of())).delete(&pool).await.unwrap();
    assert_eq!(gone, 2, "Bob and the second Ada");
    // Alone, such a query would compare with its own row: refused before any SQL.
    let sent = statements.load(Ordering::SeqCst);
    let e = books_of().all(&pool).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage);
    assert!(e.message().contains("names `id` of an enclosing query's row"), "{e}");
    assert_eq!(books_of().delete(&pool).await.unwrap_err().kind(), ErrorKind::Usage);
    assert_eq!(statements.load(Ordering::SeqCst), sent);
    cleanup(schema).await;
}

/// Values computed per row from related rows, in the same statement: read with each row,
/// ordered by, filtered by.
#[tokio::test]
async fn annotations_compute_values_from_each_rows_related_rows() {
    use chakra::models::agg;
    let (pool, schema, statements) = library().await;
    let mut engines = Book::query().filter(Book::title().eq("Engines")).one(&pool).await.unwrap();
    engines.rating = 3.0;
    engines.update(&pool).await.unwrap();
    statements.store(0, Ordering::SeqCst);

    let books = || agg::count().related(Book::author_id(), Author::id());
    let rated = || agg::max(Book::rating()).related(Book::author_id(), Author::id());
    let good = || agg::count().filter(Book::rating().gt(4.0)).related(Book::author_id(), Author::id());
    let rows = Author::query().order_by(Author::name().asc()).annotate((books(), rated(), good())).all(&pool).await;
    let rows: Vec<_> = rows.unwrap().into_iter().map(|(a, v)| (a.name, v)).collect();
    assert_eq!(rows, [("Ada".to_string(), (2, Some(4.5), 1)), ("Bob".to_string(), (0, None, 0))]);
    assert_eq!(statements.load(Ordering::SeqCst), 1, "one statement");

    let by_books = Author::query().order_by(Author::name().asc()).annotate(books()).order_by_value(false);
    let first = by_books.first(&pool).await.unwrap().map(|(a, n)| (a.name, n));
    assert_eq!(first, Some(("Bob".into(), 0)));
    let streamed: Vec<(Author, i64)> = by_books.stream(&pool).await.unwrap().try_collect().await.unwrap();
    assert_eq!(
        streamed.into_iter().map(|(a, n)| (a.name, n)).collect::<Vec<_>>(),
        [("Bob".into(), 0), ("Ada".into(), 2)]
    );
    assert_eq!(by_books.count(&pool).await.unwrap(), 2);

    // Arithmetic on them, read and filtered by.
    let twice = Author::query().order_by(Author::name().asc()).annotate((books() * 2 + 1).row_value());
    let twice: Vec<_> = twice.all(&pool).await.unwrap().into_iter().map(|(a, n)| (a.name, n)).collect();
    assert_eq!(twice, [("Ada".to_string(), 5), ("Bob".to_string(), 1)]);
    let beyond_key = Author::query().filter((books() * 1000).row_value().gt(0)).count(&pool).await.unwrap();
    assert_eq!(beyond_key, 1, "Ada");

    let prolific = Author::query().filter(books().gte(2)).all(&pool).await.unwrap();
    assert_eq!(prolific.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["Ada"]);
    let idle = Author::query().filter(books().eq(0)).count(&pool).await.unwrap();
    assert_eq!(idle, 1, "Bob");
    // A book's author's count of books: the related rows may be the other way round.
    let authors_books = agg::count().related(Book::author_id(), Author::id());
    let of_book = agg::max(Author::name()).related(Author::id(), Book::author_id());
    let books = Book::query().order_by(Book::title().asc()).annotate(of_book).all(&pool).await.unwrap();
    let names: Vec<(String, Option<String>)> = books.into_iter().map(|(b, a)| (b.title, a)).collect();
    let expected = [("Anonymous", None), ("Engines", Some("Ada")), ("Notes", Some("Ada"))];
    assert_eq!(names, expected.map(|(t, a)| (t.to_string(), a.map(str::to_string))));
    assert_eq!(Author::query().filter(authors_books.lt(1)).delete(&pool).await.unwrap(), 1, "Bob, by his count");
    cleanup(schema).await;
}

#[derive(Model, Debug, Clone, PartialEq)]
#[chakra(table = "rel_reviews")]
pub struct Review {
    #[chakra(primary_key)]
    pub id: i64,
    #[chakra(references = "rel_books.id")]
    pub book_id: i64,
    pub stars: i32,
    #[chakra(references = "rel_authors.id")]
    pub reviewer_id: Option<i64>,
}

/// An aggregate across two relations: each author's reviews, through their books; each
/// review counted once per chain reaching it.
#[tokio::test]
async fn annotations_aggregate_rows_across_a_chain_of_relations() {
    use chakra::models::agg;
    let (pool, schema, statements) = library().await;
    Review::create_table(&pool).await.unwrap();
    let books = Book::query().order_by(Book::title().asc()).all(&pool).await.unwrap();
    let (anonymous, engines, notes) = (books[0].id, books[1].id, books[2].id);
    let review = |book_id, stars| Review { id: 0, book_id, stars, reviewer_id: None };
    let reviews = vec![review(notes, 5), review(notes, 2), review(engines, 4), review(anonymous, 1)];
    Review::insert_all(&pool, reviews).await.unwrap();
    statements.store(0, Ordering::SeqCst);

    let of_author = |aggregate: agg::Of<_>| aggregate.through(Review::book_id(), Book::id());
    let reviews = of_author(agg::count()).related(Book::author_id(), Author::id());
    let stars =
        agg::sum(Review::stars()).through(Review::book_id(), Book::id()).related(Book::author_id(), Author::id());
    let good = of_author(agg::count().filter(Review::stars().gte(4))).related(Book::author_id(), Author::id());
    let annotated = Author::query().order_by(Author::name().asc()).annotate((reviews.clone(), stars, good));
    let rows: Vec<_> = annotated.all(&pool).await.unwrap().into_iter().map(|(a, v)| (a.name, v)).collect();
    assert_eq!(rows, [("Ada".to_string(), (3, Some(11), 2)), ("Bob".to_string(), (0, None, 0))]);
    assert_eq!(statements.load(Ordering::SeqCst), 1, "one statement");
    assert_eq!(Author::query().filter(reviews.gt(2)).count(&pool).await.unwrap(), 1, "Ada");

    // Forward, then back: for each review, how many reviews its author's books have.
    let by_author = agg::count()
        .through(Review::book_id(), Book::id())
        .through(Book::author_id(), Author::id())
        .through(Author::id(), Book::author_id())
        .related(Book::id(), Review::book_id());
    let rows = Review::query().order_by(Review::stars().asc()).annotate(by_author).all(&pool).await.unwrap();
    let rows: Vec<(i32, i64)> = rows.into_iter().map(|(r, n)| (r.stars, n)).collect();
    assert_eq!(rows, [(1, 0), (2, 3), (4, 3), (5, 3)], "the anonymous book's review reaches no author");
    Review::drop_table(&pool).await.unwrap();
    cleanup(schema).await;
}

/// Two joins in one statement: a chain (each review's book and the book's author), or
/// two relations of the row itself (its book and its reviewer).
#[tokio::test]
async fn select_related_joins_a_chain_or_two_relations() {
    let (pool, schema, statements) = library().await;
    Review::create_table(&pool).await.unwrap();
    let books = Book::query().order_by(Book::title().asc()).all(&pool).await.unwrap();
    let bob = Author::query().filter(Author::name().eq("Bob")).one(&pool).await.unwrap();
    let (anonymous, notes) = (books[0].id, books[2].id);
    let reviews = vec![
        Review { id: 0, book_id: notes, stars: 5, reviewer_id: Some(bob.id) },
        Review { id: 0, book_id: anonymous, stars: 1, reviewer_id: None },
    ];
    Review::insert_all(&pool, reviews).await.unwrap();
    statements.store(0, Ordering::SeqCst);

    let by_stars = Review::query().order_by(Review::stars().desc());
    let chain = by_stars
        .clone()
        .select_related(Review::book_id(), Book::id())
        .select_related_of(Book::author_id(), Author::id());
    let rows: Vec<(Review, Option<Book>, Option<Author>)> = chain.all(&pool).await.unwrap();
    let got: Vec<_> = rows
        .iter()
        .map(|(r, b, a)| (r.stars, b.as_ref().map(|b| b.title.as_str()), a.as_ref().map(|a| a.name.as_str())))
        .collect();
    assert_eq!(got, [(5, Some("Notes"), Some("Ada")), (1, Some("Anonymous"), None)], "no author, no row");
    assert_eq!(statements.load(Ordering::SeqCst), 1, "one statement");

    let both =
        by_stars.select_related(Review::book_id(), Book::id()).select_related(Review::reviewer_id(), Author::id());
    let first = both.first(&pool).await.unwrap().map(|(r, b, a)| (r.stars, b.map(|b| b.title), a.map(|a| a.name)));
    assert_eq!(first, Some((5, Some("Notes".into()), Some("Bob".into()))));
    let streamed: Vec<_> = both.stream(&pool).await.unwrap().try_collect().await.unwrap();
    assert_eq!((streamed.len(), both.count(&pool).await.unwrap()), (2, 2));
    // Each key must be unique, the second too.
    let err = Review::query()
        .select_related(Review::book_id(), Book::id())
        .select_related_of(Book::id(), Review::book_id())
        .all(&pool)
        .await
        .unwrap_err();
    assert!(err.message().contains("`rel_reviews.book_id` is neither the primary key nor unique"), "{err}");
    Review::drop_table(&pool).await.unwrap();
    cleanup(schema).await;
}

/// Each row with the row it refers to, in the rows' own statement: `None` for a NULL key,
/// the rows picked, ordered, sliced and locked as without the join.
#[tokio::test]
async fn select_related_joins_each_rows_parent_in_one_statement() {
    let (pool, schema, statements) = library().await;
    let by_title = Book::query().order_by(Book::title().desc());
    let rows = by_title.clone().select_related(Book::author_id(), Author::id()).all(&pool).await.unwrap();
    let got: Vec<(&str, Option<&str>)> =
        rows.iter().map(|(b, a)| (b.title.as_str(), a.as_ref().map(|a| a.name.as_str()))).collect();
    assert_eq!(got, [("Notes", Some("Ada")), ("Engines", Some("Ada")), ("Anonymous", None)]);
    assert_eq!(rows[0].1.as_ref().map(|a| a.id), rows[0].0.author_id, "the author the key names");
    assert_eq!(statements.load(Ordering::SeqCst), 1, "one statement");

    let joined = by_title.clone().offset(1).limit(1).select_related(Book::author_id(), Author::id());
    assert!(joined.to_statement().sql.contains(r#"LEFT JOIN "rel_authors""#), "{:?}", joined.to_statement());
    let first = joined.first(&pool).await.unwrap().map(|(b, a)| (b.title, a.map(|a| a.name)));
    assert_eq!(first, Some(("Engines".into(), Some("Ada".into()))), "the window is the books'");
    let none = by_title.clone().filter(Book::title().eq("Nope")).select_related(Book::author_id(), Author::id());
    assert_eq!(none.first(&pool).await.unwrap(), None);
    let all = by_title.clone().select_related(Book::author_id(), Author::id());
    assert_eq!(all.count(&pool).await.unwrap(), 3);
    let streamed: Vec<_> = all.stream(&pool).await.unwrap().try_collect().await.unwrap();
    assert_eq!(streamed, rows, "streamed as fetched");

    // Locked rows are the books' own, in a transaction.
    let tx = pool.begin().await.unwrap();
    let locked = by_title.for_update().select_related(Book::author_id(), Author::id()).all(&tx).await.unwrap();
    assert_eq!(locked.len(), 3);
    tx.rollback().await.unwrap();

    // A key that is neither the primary key nor unique could match several rows.
    statements.store(0, Ordering::SeqCst);
    let err = Book::query().select_related(Book::title(), Author::name()).all(&pool).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage, "{err:?}");
    assert!(err.message().contains("`rel_authors.name` is neither the primary key nor unique"), "{err}");
    assert_eq!(statements.load(Ordering::SeqCst), 0, "refused before any SQL");
    cleanup(schema).await;
}

/// Values computed from related rows go inside functions and comparisons too.
#[tokio::test]
async fn values_of_related_rows_go_inside_functions() {
    use chakra::models::{agg, func};
    let (pool, schema, _) = library().await;
    let author_name = || Author::name().via(Book::author_id(), Author::id());
    let shout = func::upper(func::coalesce(author_name(), "nobody")).row_value();
    let rows = Book::query().order_by(Book::title().asc()).annotate(shout).all(&pool).await.unwrap();
    let rows: Vec<(String, String)> = rows.into_iter().map(|(b, s)| (b.title, s)).collect();
    let expected = [("Anonymous", "NOBODY"), ("Engines", "ADA"), ("Notes", "ADA")];
    assert_eq!(rows, expected.map(|(t, s)| (t.to_string(), s.to_string())));
    let by_ada = Book::query().filter(func::lower(author_name()).row_value().eq("ada"));
    assert_eq!(by_ada.count(&pool).await.unwrap(), 2);
    // A JSON object of a row's values and its author's name.
    let card = func::json_object().field("title", Book::title()).field("author", author_name()).value();
    let cards = Book::query().order_by(Book::title().asc()).annotate(card.row_value()).all(&pool).await.unwrap();
    let cards: Vec<_> = cards.into_iter().map(|(_, card)| card).collect();
    assert_eq!(
        cards,
        [
            chakra::serde_json::json!({"title": "Anonymous", "author": null}),
            chakra::serde_json::json!({"title": "Engines", "author": "Ada"}),
            chakra::serde_json::json!({"title": "Notes", "author": "Ada"}),
        ]
    );
    // An aggregate of each author's books, inside a function: none counts as zero.
    let books = func::coalesce(agg::max(Book::rating()).related(Book::author_id(), Author::id()), 0.0).row_value();
    let rated = Author::query().order_by(Author::name().asc()).annotate(books).all(&pool).await.unwrap();
    assert_eq!(
        rated.into_iter().map(|(a, r)| (a.name, r)).collect::<Vec<_>>(),
        [("Ada".into(), 4.5), ("Bob".into(), 0.0)]
    );
    cleanup(schema).await;
}

/// A column of the row a foreign key leads to, per row: to sort by (NULLs first when
/// descending), filter by and read with the rows.
#[tokio::test]
async fn rows_sort_filter_and_read_by_the_row_their_key_leads_to() {
    let (pool, schema, _) = library().await;
    let author_name = || Author::name().via(Book::author_id(), Author::id());
    let by_author = Book::query().order_by(author_name().desc()).order_by(Book::title().asc());
    let titles: Vec<String> = by_author.all(&pool).await.unwrap().into_iter().map(|b| b.title).collect();
    assert_eq!(titles, ["Anonymous", "Engines", "Notes"]);
    let first_two = by_author.clone().limit(2).all(&pool).await.unwrap();
    assert_eq!(first_two.len(), 2, "the window picks by the value");
    assert_eq!(Book::query().filter(author_name().eq("Ada")).count(&pool).await.unwrap(), 2);
    let named = Book::query().order_by(Book::title().asc()).annotate(author_name()).all(&pool).await.unwrap();
    let named: Vec<(String, Option<String>)> = named.into_iter().map(|(b, a)| (b.title, a)).collect();
    let expected = [("Anonymous", None), ("Engines", Some("Ada")), ("Notes", Some("Ada"))];
    assert_eq!(named, expected.map(|(t, a)| (t.to_string(), a.map(str::to_string))));
    cleanup(schema).await;
}
