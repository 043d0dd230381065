"""A lead arriving and its first touch: new, incoming, a request, a first contact, taken."""

from __future__ import annotations

from chalicelib.services.stage_vocabulary.concept import IN_PROGRESS, NEW, STRONG, WEAK, Concept, stems

OPENING = (
    Concept(
        "new",
        NEW,
        STRONG,
        stems("""
        ru нов входящ свеж
        uk нов вхідн свіж
        en new incoming inbox fresh
        es nuev entrant
        pt nov entrad
        tr yeni gelen
        id baru masuk
    """),
    ),
    # a lead, a request or where it came from: says NEW, but a first stage named so may already be worked
    Concept(
        "lead",
        NEW,
        WEAK,
        stems("""
        ru лид заявк обращен холодн сайт реклам пропущен
        uk лід заявк звернен запит холодн сайт реклам пропущен
        en lead request inquir enquir prospect cold welcome imported website
        es solicitud consulta bienvenid frio importad anuncio
        pt solicitac consulta boas frio importad anuncio
        tr talep aday soguk
        id prospek permintaan dingin
    """),
    ),
    # "first"/"initial": a NEW stage only together with a contact or call word ("Первичный контакт")
    Concept(
        "first",
        NEW,
        WEAK,
        stems("""
        ru первичн первый первая перв
        uk первин перш
        en initial first
        es primer inicial
        pt primeir inicial
        tr ilk
        id awal pertama
    """),
    ),
    Concept(
        "contact",
        IN_PROGRESS,
        WEAK,
        stems("""
        ru контакт
        uk контакт
        en contact
        es contacto
        pt contato
        tr temas iletisim
        id kontak
    """),
        negated=NEW,
    ),
    # a call alone may be the first call or a later one: it votes only as part of a first contact
    Concept(
        "call",
        None,
        WEAK,
        stems("""
        ru звон обзвон
        uk дзвін
        en call phone
        es llamad
        pt ligac
        tr arama
        id telepon
    """),
    ),
    # somebody already took the lead: "Contacted", "Разобрано"; negated it is still new ("Неразобранное")
    Concept(
        "handled",
        IN_PROGRESS,
        STRONG,
        stems("""
        ru разобран обработан обработк связал
        uk розібран оброблен
        en contacted sorted processed handled reached
        es contactad procesad atendid
        pt contatad processad atendid
        tr ulasil
        id dihubungi diproses
    """),
        negated=NEW,
    ),
)
