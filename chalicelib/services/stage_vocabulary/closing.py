"""A lead at its end: won, sold, paid (or received with a payment word), lost, closed."""

from __future__ import annotations

from chalicelib.services.stage_vocabulary.concept import CLOSED, IN_PROGRESS, STRONG, WEAK, Concept, stems

CLOSING = (
    # with a payment word it means paid: "Оплата отримана", "Pagamento recebido"
    Concept(
        "received",
        None,
        WEAK,
        stems("""
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
        stems("""
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
        stems("""
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
        stems("""
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
        stems("""
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
        stems("""
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
