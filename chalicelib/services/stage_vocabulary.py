"""Word stems per concept and language for naming amoCRM/Kommo pipeline stages.

Each concept lists stems (word beginnings) per language: ru, uk, en, es, pt, tr, id. A stem is
written as people type it; stage_names folds it exactly as it folds a stage name (case, accents,
Cyrillic/Latin look-alikes), so "negociação", "negociacao" and "NEGOCIAÇÃO" share the stem "negocia".
"""

from __future__ import annotations

from dataclasses import dataclass

NEW, IN_PROGRESS, CLOSED = "NEW", "IN_PROGRESS", "CLOSED"
STRONG, WEAK = 2, 1


@dataclass(frozen=True)
class Concept:
    name: str
    status: str | None  # what the concept says about the lead; None for a modifier with no vote
    strength: int  # STRONG decides on its own; WEAK only leans (position may confirm it)
    stems: tuple[str, ...]
    negated: str | None = None  # the status when the word is negated ("не реализовано"); None: ignored
    pending: bool = False  # an unfinished step: "waiting for", "check": keeps won/paid in progress
    outcome: str = ""  # "won" / "lost" for a CLOSED concept, shown in the reason


def _stems(table: str) -> tuple[str, ...]:
    """One line per language: its code, then the stems."""
    return tuple(stem for line in table.strip().splitlines() for stem in line.split()[1:])


CONCEPTS = (
    Concept(
        "new",
        NEW,
        STRONG,
        _stems("""
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
        _stems("""
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
        _stems("""
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
        _stems("""
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
        _stems("""
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
        _stems("""
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
    Concept(
        "work",
        IN_PROGRESS,
        STRONG,
        _stems("""
        ru работ
        uk робот працю
        en progress working
        es proceso curso
        pt andamento atendiment
        tr islem
        id proses
    """),
    ),
    Concept(
        "talks",
        IN_PROGRESS,
        STRONG,
        _stems("""
        ru переговор обсужд торг возражен
        uk переговор обговор заперечен
        en negotiat discuss objection
        es negocia discusi objecion
        pt negocia discuss objecao objecoes
        tr pazarlik muzakere gorusme itiraz
        id negosiasi diskusi keberatan
    """),
    ),
    Concept(
        "decision",
        IN_PROGRESS,
        STRONG,
        _stems("""
        ru решен дума
        uk рішен виріш
        en decis decid
        es decis decid
        pt decis decid
        tr karar
        id keputus
    """),
    ),
    Concept(
        "contract",
        IN_PROGRESS,
        STRONG,
        _stems("""
        ru договор согласов контракт
        uk договір узгоджен контракт
        en contract agreement
        es contrat
        pt contrat
        tr sozlesme
        id kontrak perjanjian
    """),
    ),
    Concept(
        "offer",
        IN_PROGRESS,
        STRONG,
        _stems("""
        ru предложен кп ткп коммерческ просчет расчет цен смет
        uk пропозиц кп комерційн розрахун цін
        en proposal offer quote quotation price pricing estimate
        es propuest presupuest cotiz oferta precio
        pt propost orcament cotac oferta preco
        tr teklif fiyat
        id penawar harga
    """),
    ),
    Concept(
        "meeting",
        IN_PROGRESS,
        STRONG,
        _stems("""
        ru встреч показ презентац демо
        uk зустріч перегляд показ презентац демо
        en meeting viewing visit demo presentation appointment
        es reuni visita demostrac presentac
        pt reuni visita apresentac demonstrac
        tr toplanti sunum ziyaret randevu
        id rapat kunjungan presentasi survei
    """),
    ),
    Concept(
        "booking",
        IN_PROGRESS,
        STRONG,
        _stems("""
        ru бронир запис
        uk бронюв запис
        en book booking schedul reserv
        es reserv agend inscri
        pt reserv agend inscri
        tr rezerv
        id jadwal reservasi
    """),
    ),
    # negated it is a lost lead: "Нецелевой", "Descalificado", "Unqualified"
    Concept(
        "qualified",
        IN_PROGRESS,
        STRONG,
        _stems("""
        ru квалиф целев
        uk кваліф цільов
        en qualif discover
        es calific cualific
        pt qualific
        tr nitelik
        id kualifik
    """),
        negated=CLOSED,
    ),
    Concept(
        "interest",
        IN_PROGRESS,
        STRONG,
        _stems("""
        ru интерес
        uk інтерес зацікав
        en interest
        es interes
        pt interess
        tr ilgi
        id minat tertarik
    """),
        negated=CLOSED,
    ),
    Concept(
        "fit",
        IN_PROGRESS,
        WEAK,
        _stems("""
        ru подход
        uk підход
        en fit suitable
        es adecuad
        pt adequad
        tr uygun
        id cocok sesuai
    """),
        negated=CLOSED,
    ),
    Concept(
        "follow-up",
        IN_PROGRESS,
        STRONG,
        _stems("""
        ru напомин дожим реактив
        uk нагадув реактив
        en follow remind reengag nurtur recover
        es seguimient recordator recuper reactiv
        pt acompanhament reengaj recuper reativ
        tr takip hatirlat
        id tindak pengingat
    """),
    ),
    Concept(
        "check",
        IN_PROGRESS,
        STRONG,
        _stems("""
        ru провер контрол
        uk перевір контрол
        en check review verif
        es revis verific control
        pt revis verific confer
        tr kontrol incele
        id cek periksa revisi
    """),
        pending=True,
    ),
    Concept(
        "waiting",
        IN_PROGRESS,
        STRONG,
        _stems("""
        ru ожид ждем
        uk очіку чека
        en wait await pending hold
        es esper pendient
        pt aguard pendent
        tr bekle
        id menunggu tunggu
    """),
        pending=True,
    ),
    Concept(
        "partial",
        IN_PROGRESS,
        STRONG,
        _stems("""
        ru частичн
        uk частков
        en partial
        es parcial
        pt parcial
        tr kismi
        id sebagian
    """),
        pending=True,
    ),
    Concept(
        "deposit",
        IN_PROGRESS,
        STRONG,
        _stems("""
        ru предоплат аванс задат
        uk передоплат аванс завдат
        en deposit prepay
        es abono anticipo
        pt sinal
        tr kapora
        id panjar
    """),
    ),
    Concept(
        "payment",
        IN_PROGRESS,
        STRONG,
        _stems("""
        ru счет оплат платеж
        uk рахун оплат платіж
        en invoice payment billing
        es factur pago cobr
        pt fatur pagament cobranc boleto
        tr fatura odeme
        id tagihan pembayar faktur
    """),
    ),
    Concept(
        "underway",
        IN_PROGRESS,
        WEAK,
        _stems("""
        ru горяч просроч доставк документ
        uk гаряч простроч доставк документ
        en overdue deadline deliver
        es calient atrasad vencid entrega
        pt quente atrasad vencid
        tr sicak gecik teslim
        id panas terlambat kirim
    """),
    ),
    # with a payment word it means paid: "Оплата отримана", "Pagamento recebido"
    Concept(
        "received",
        None,
        WEAK,
        _stems("""
        ru получен поступ
        uk отриман надійш
        en received
        es recibid
        pt recebid
        tr alindi geldi
        id diterima
    """),
    ),
    Concept(
        "won",
        CLOSED,
        STRONG,
        _stems("""
        ru успеш успех реализ выигр продан выполнен завершен
        uk успіш реаліз вигра продан виконан завершен
        en won win success sold complet done
        es ganad exito lograd vendid complet
        pt ganh sucess vendid conclu
        tr kazan basari satildi tamamlan
        id berhasil sukses menang terjual selesai
    """),
        negated=CLOSED,
        outcome="won",
    ),
    # a lone "deal" is a won deal in some pipelines and the negotiation in others
    Concept(
        "deal",
        CLOSED,
        WEAK,
        _stems("""
        en deal
        id deal
    """),
        outcome="won",
    ),
    # negated it is still unpaid, so in progress: "Не оплачено", "No pagado"
    Concept(
        "paid",
        CLOSED,
        STRONG,
        _stems("""
        ru оплачен
        uk оплачен сплачен
        en paid
        es pagad
        pt quitad
        tr odend
        id dibayar lunas terbayar
    """),
        negated=IN_PROGRESS,
        outcome="won",
    ),
    Concept(
        "lost",
        CLOSED,
        STRONG,
        _stems("""
        ru отказ провал проигр отмен отвал слив потерян
        uk відмов провал програ скасов втрачен
        en lost lose cancel reject declin fail junk spam refund
        es perdid cancelad rechaz descart reembols devoluc
        pt perdid cancelad recusad descart reembols devoluc
        tr kaybed kayip iptal redded basarisiz terk iade
        id hilang gagal batal ditolak tolak
    """),
        outcome="lost",
    ),
    Concept(
        "closed",
        CLOSED,
        STRONG,
        _stems("""
        ru закрыт
        uk закрит
        en closed
        es cerrad
        pt fechad
        tr kapan kapal
        id ditutup tutup
    """),
    ),
)

# Words that negate the next concept word; Turkish "değil" follows the word it negates.
NEGATIONS = _stems("""
    ru не нет без
    uk не без
    en not no non without
    es no sin
    pt nao sem
    id tidak belum bukan tanpa
""")
POST_NEGATIONS = _stems("""
    tr degil
""")
# Negation glued to the word: "неразобранное", "unqualified", "disqualified", "descalificado".
NEGATING_PREFIXES = _stems("""
    ru не
    en un dis
    es des
""")
