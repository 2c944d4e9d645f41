"""SVG charts drawn on the server (no JavaScript library, nothing from a CDN): bars of net
positions over cycles, a flow diagram of a cycle through the hub, daily volumes.

Geometry is computed with Decimal amounts scaled to pixels; only the pixel coordinates are
rounded, never an amount. Every bar and band carries a <title> with its exact figure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from html import escape

from services.portal.labels import money

PALETTE = ("#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#2c7a7b", "#975a16",
           "#4a5568", "#9b2c2c")
FONT = 'font-family="sans-serif" font-size="11"'


def _px(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.1'))}"


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">'
            f"<title>{escape(title)}</title>" + "".join(body) + "</svg>")


def _empty(title: str) -> str:
    return _svg(400, 60, [f'<text x="10" y="35" {FONT}>—</text>'], title)


def net_bars(rows: Sequence[tuple[str, str, Decimal]], title: str) -> str:
    """Grouped bars: one group per cycle, one bar per agency, above the axis when the
    agency is owed (net > 0), below when it owes."""
    if not rows:
        return _empty(title)
    cycles = sorted({c for c, _, _ in rows})
    agencies = sorted({a for _, a, _ in rows})
    nets = {(c, a): n for c, a, n in rows}
    top = max([n for n in nets.values() if n > 0] or [Decimal(0)])
    bottom = max([-n for n in nets.values() if n < 0] or [Decimal(0)])
    plot_h = Decimal(220)
    scale = plot_h / ((top + bottom) or Decimal(1))
    axis_y = Decimal(20) + top * scale
    bar_w = Decimal(14)
    group_w = bar_w * len(agencies) + 20
    width = int(80 + group_w * len(cycles)) + 20
    legend_h = 16 * ((len(agencies) + 3) // 4)
    height = int(20 + plot_h + 40 + legend_h)
    body = [f'<line x1="70" x2="{width - 10}" y1="{_px(axis_y)}" y2="{_px(axis_y)}" '
            'stroke="#333"/>',
            f'<text x="65" y="24" text-anchor="end" {FONT}>{money(top)}</text>',
            f'<text x="65" y="{_px(axis_y + 4)}" text-anchor="end" {FONT}>0</text>',
            f'<text x="65" y="{_px(axis_y + bottom * scale)}" text-anchor="end" {FONT}>'
            f'{money(-bottom)}</text>' if bottom else ""]
    for ci, cycle in enumerate(cycles):
        x0 = Decimal(80) + group_w * ci
        for ai, agency in enumerate(agencies):
            net = nets.get((cycle, agency))
            if net is None:
                continue
            h = abs(net) * scale
            y = axis_y - h if net > 0 else axis_y
            body.append(
                f'<rect class="bar" x="{_px(x0 + bar_w * ai)}" y="{_px(y)}" '
                f'width="{_px(bar_w - 2)}" height="{_px(max(h, Decimal("0.5")))}" '
                f'fill="{PALETTE[ai % len(PALETTE)]}"><title>{escape(cycle)} '
                f'{escape(agency)}: {money(net)}</title></rect>')
        body.append(f'<text x="{_px(x0 + group_w / 2 - 10)}" y="{_px(20 + plot_h + 18)}" '
                    f'text-anchor="middle" {FONT}>{escape(cycle)}</text>')
    for ai, agency in enumerate(agencies):
        lx, ly = 80 + 110 * (ai % 4), int(20 + plot_h + 34 + 16 * (ai // 4))
        body.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" '
                    f'fill="{PALETTE[ai % len(PALETTE)]}"/>'
                    f'<text x="{lx + 14}" y="{ly}" {FONT}>{escape(agency)}</text>')
    return _svg(max(width, 520), height, body, title)


def flow_diagram(left: Sequence[tuple[str, Decimal]], centre: str,
                 right: Sequence[tuple[str, Decimal]], title: str) -> str:
    """A two-sided Sankey: bands from each left party into the centre and from the centre
    to each right party, each as thick as its amount."""
    total = max(sum((a for _, a in left), Decimal(0)), sum((a for _, a in right), Decimal(0)))
    if total <= 0:
        return _empty(title)
    gap = Decimal(6)
    height_avail = Decimal(260)
    n = max(len(left), len(right), 1)
    scale = (height_avail - gap * (n - 1)) / total
    width, height = 760, 300
    centre_h = total * scale
    cy0 = Decimal(20) + (height_avail - centre_h) / 2
    body = [f'<rect x="360" y="{_px(cy0)}" width="40" height="{_px(centre_h)}" fill="#444">'
            f'<title>{escape(centre)}</title></rect>',
            f'<text x="380" y="{_px(cy0 - 6)}" text-anchor="middle" {FONT}>'
            f'{escape(centre)}</text>']

    def side(parties: Sequence[tuple[str, Decimal]], into: bool) -> None:
        y = Decimal(20)
        cy = cy0
        for i, (name, amount) in enumerate(parties):
            h = amount * scale
            colour = PALETTE[i % len(PALETTE)]
            x_node = Decimal(150) if into else Decimal(570)
            node_edge = x_node + (40 if into else 0)
            hub_edge = Decimal(360) if into else Decimal(400)
            a, b = (node_edge, hub_edge)
            mid = (a + b) / 2
            body.append(
                f'<path class="band" d="M{_px(a)},{_px(y)} C{_px(mid)},{_px(y)} {_px(mid)},'
                f'{_px(cy)} {_px(b)},{_px(cy)} L{_px(b)},{_px(cy + h)} C{_px(mid)},'
                f'{_px(cy + h)} {_px(mid)},{_px(y + h)} {_px(a)},{_px(y + h)} Z" '
                f'fill="{colour}" fill-opacity="0.45"><title>{escape(name)} '
                f'{"→" if into else "←"} {escape(centre)}: {money(amount)}</title></path>')
            body.append(f'<rect x="{_px(x_node)}" y="{_px(y)}" width="40" '
                        f'height="{_px(max(h, Decimal(1)))}" fill="{colour}"/>')
            tx = x_node - 6 if into else x_node + 46
            anchor = "end" if into else "start"
            body.append(f'<text x="{_px(tx)}" y="{_px(y + h / 2 + 4)}" text-anchor="{anchor}" '
                        f'{FONT}>{escape(name)} {money(amount)}</text>')
            y += h + gap
            cy += h

    side(left, True)
    side(right, False)
    return _svg(width, height, body, title)


def daily_bars(rows: Sequence[tuple[date, int, Decimal]], title: str) -> str:
    """One bar per business day: its number of items; the amount in each bar's title."""
    if not rows:
        return _empty(title)
    most = max(n for _, n, _ in rows) or 1
    plot_h = Decimal(160)
    bar_w = Decimal(18)
    width = int(60 + bar_w * len(rows)) + 20
    body = [f'<line x1="50" x2="{width - 10}" y1="180" y2="180" stroke="#333"/>',
            f'<text x="45" y="24" text-anchor="end" {FONT}>{most}</text>']
    for i, (day, n, amount) in enumerate(rows):
        h = plot_h * n / most
        x = Decimal(55) + bar_w * i
        body.append(f'<rect class="bar" x="{_px(x)}" y="{_px(Decimal(180) - h)}" '
                    f'width="{_px(bar_w - 3)}" height="{_px(h)}" fill="{PALETTE[0]}">'
                    f'<title>{day.isoformat()}: {n}, {money(amount)}</title></rect>')
        if day.day in (1, 10, 20) or i == 0:
            body.append(f'<text x="{_px(x)}" y="196" {FONT}>{day.strftime("%m-%d")}</text>')
    return _svg(max(width, 400), 210, body, title)
