"""Scenario 2, an e-commerce marketplace: a cart updated and not checked out within an hour
gets a push. Entering a store's geofence then brings a push with recommendations for that
store; otherwise, after a day, an email whose recommendations come from the decisioning
service. Checkout converts at any point. During the 12.12 shopping festival (a date window
on the offer) the top offer is the festival discount instead.

Offers live in the decisioning catalogue (`OFFERS`, editable over `/v1/offers`), so
merchandisers change recommendations and festival dates without publishing the journey.
"""

from datetime import UTC, datetime, timedelta

from journeys.schemas.decision import Offer
from journeys.schemas.delivery import Template
from journeys.schemas.journey import (
    DecideStep,
    Entry,
    EventCondition,
    ExitStep,
    JourneySpec,
    SendStep,
    WaitForEventStep,
)

STORE_PLACEMENT = "store-push"
EMAIL_PLACEMENT = "cart-email"

JOURNEY = JourneySpec(
    id="cart-abandonment",
    name="Cart abandonment",
    description="Push after an hour, store offers in a geofence, else a recommendation email.",
    entry=Entry(event="cart.updated"),
    goal=EventCondition(event="checkout.completed"),
    exit_when=[EventCondition(event="unsubscribed")],
    reentry="after_exit",
    priority=5,
    steps=[
        WaitForEventStep(
            id="wait-checkout",
            event="checkout.completed",
            timeout=timedelta(hours=1),
            on_event="done",
            on_timeout="push-reminder",
        ),
        SendStep(id="push-reminder", channel="push", template="cart-reminder", next="wait-store"),
        WaitForEventStep(
            id="wait-store",
            event="geofence.entered",
            timeout=timedelta(days=1),
            on_event="store_offers",
            on_timeout="email_offers",
        ),
        DecideStep(
            id="store_offers",
            placement=STORE_PLACEMENT,
            limit=2,
            next="store-push",
            on_empty="done",
        ),
        SendStep(id="store-push", channel="push", template="store-recommendations", next="done"),
        DecideStep(id="email_offers", placement=EMAIL_PLACEMENT, limit=3, next="email"),
        SendStep(id="email", channel="email", template="cart-recommendations", next="done"),
        ExitStep(id="done"),
    ],
)

TEMPLATES = [
    Template(
        id="cart-reminder",
        title="Still thinking it over?",
        body="Your cart is waiting{% if event.total %} ({{ event.total }}){% endif %}.",
        url="shop://cart",
    ),
    Template(
        id="store-recommendations",
        title="You're at {{ last_event.store_name | default('one of our stores') }}",
        body="{{ context.decisions.store_offers.top.fields.headline }}",
        url="shop://stores/{{ last_event.store_id }}",
    ),
    Template(
        id="cart-recommendations",
        subject="{{ context.decisions.email_offers.top.fields.headline "
        "if context.decisions.email_offers.top else 'Your cart is waiting' }}",
        body="You left something in your cart.\n"
        "{% for offer in context.decisions.email_offers.offers %}"
        "- {{ offer.fields.headline }}\n{% endfor %}",
        html="<p>You left something in your cart.</p><ul>"
        "{% for offer in context.decisions.email_offers.offers %}"
        "<li>{{ offer.fields.headline }}</li>{% endfor %}</ul>",
        variants={
            "id": {
                "body": "Keranjangmu menunggu.\n"
                "{% for offer in context.decisions.email_offers.offers %}"
                "- {{ offer.fields.headline }}\n{% endfor %}"
            }
        },
    ),
]

FESTIVAL_START = datetime(2026, 12, 11, 17, tzinfo=UTC)  # 12.12, 00:00 in Jakarta
OFFERS = [
    Offer(
        id="festival-1212",
        name="12.12 festival discount",
        placements=[STORE_PLACEMENT, EMAIL_PLACEMENT],
        priority=100,
        fields={"headline": "12.12 festival: 20% off your whole cart", "discount": 20},
        starts_at=FESTIVAL_START,
        ends_at=FESTIVAL_START + timedelta(days=1),
    ),
    Offer(
        id="dago-sneakers",
        name="Dago store sneakers",
        placements=[STORE_PLACEMENT],
        priority=20,
        fields={"headline": "In store today: sneakers, buy one get one half price"},
        eligibility={"field": "last_event.store_id", "op": "eq", "value": "bandung-dago"},
    ),
    Offer(
        id="similar-items",
        name="Items like yours",
        placements=[EMAIL_PLACEMENT],
        priority=10,
        fields={"headline": "Shoppers who liked your cart also bought these"},
    ),
    Offer(
        id="free-shipping",
        name="Free shipping",
        placements=[STORE_PLACEMENT, EMAIL_PLACEMENT],
        priority=5,
        fields={"headline": "Free shipping on this order"},
        cap_per_customer=3,
    ),
]
