"""A lead being worked: talks, offers, meetings, qualification, follow-ups, waiting, payment."""

from __future__ import annotations

from chalicelib.services.stage_vocabulary.concept import CLOSED, IN_PROGRESS, STRONG, WEAK, Concept, stems

WORKING = (
    Concept(
        "work",
        IN_PROGRESS,
        STRONG,
        stems("""
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
        stems("""
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
        stems("""
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
        stems("""
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
        stems("""
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
        stems("""
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
        stems("""
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
        stems("""
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
        stems("""
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
        stems("""
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
        stems("""
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
        stems("""
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
        stems("""
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
        stems("""
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
        stems("""
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
        stems("""
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
        stems("""
        ru горяч просроч доставк документ
        uk гаряч простроч доставк документ
        en overdue deadline deliver
        es calient atrasad vencid entrega
        pt quente atrasad vencid
        tr sicak gecik teslim
        id panas terlambat kirim
    """),
    ),
)
