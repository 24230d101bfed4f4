"""Column names, in one place, for every table the pipeline reads or writes."""

# Landing contract: events/
USER_ID = "user_id"
ITEM_ID = "item_id"
TS = "ts"
EVENT_TYPE = "event_type"
QUANTITY = "quantity"
VALUE = "value"

# Landing contract: items/
TITLE = "title"
DESCRIPTION = "description"
CATEGORY = "category"
BRAND = "brand"
PRICE = "price"
FIRST_SEEN = "first_seen"
# Optional flag for fees, postage and adjustments: never recommended, their events quarantined.
NON_PRODUCT = "non_product"
# Optional availability: false, or a stock of 0 (or less), and the item is never recommended on
# that night, while its events still count. Items may arrive as dt= snapshots: the newest on or
# before the run date wins.
AVAILABLE = "available"
STOCK = "stock"

# Event types accepted at ingest; the first is the default when the column is absent or empty.
EVENT_TYPES = ("purchase", "view", "add_to_cart", "rating", "review")
DEFAULT_EVENT_TYPE = "purchase"
# Event types that mean "already owned / judged": never recommend these items again.
EXCLUDING_EVENT_TYPES = ("purchase", "rating", "review")

EVENTS_REQUIRED = (USER_ID, ITEM_ID, TS)
EVENTS_OPTIONAL = (EVENT_TYPE, QUANTITY, VALUE)
ITEMS_REQUIRED = (ITEM_ID, TITLE)
ITEMS_OPTIONAL = (DESCRIPTION, CATEGORY, BRAND, PRICE, FIRST_SEEN, NON_PRODUCT, AVAILABLE, STOCK)
USERS_REQUIRED = (USER_ID,)

# Added by the pipeline
SOURCE_FILE = "source_file"
TS_RAW = "ts_raw"
ROW_ID = "row_id"
WEIGHT = "weight"
REASON = "reason"
STAGE = "stage"
DS = "ds"

# Output contract: recommendations
RANK = "rank"
SCORE = "score"
SOURCE = "source"
MODEL_VERSION = "model_version"
IS_LONG_TAIL = "is_long_tail"
# Why an item was recommended (schema v2, nullable; codes in longtail.reasons). `reason` is the
# same name as the quarantine's reason column: a different table.
REASON_ITEM_ID = "reason_item_id"
REQUIRED_RECOMMENDATION_COLUMNS = (
    USER_ID,
    RANK,
    ITEM_ID,
    SCORE,
    SOURCE,
    MODEL_VERSION,
    IS_LONG_TAIL,
)
RECOMMENDATION_COLUMNS = (*REQUIRED_RECOMMENDATION_COLUMNS, REASON_ITEM_ID, REASON)

# Output contract: similar_items (every column required)
SIMILAR_ITEM_ID = "similar_item_id"
SIMILAR_ITEM_COLUMNS = (ITEM_ID, RANK, SIMILAR_ITEM_ID, SCORE, SOURCE)

# Model factors
FACTORS = "factors"

# Text embeddings (item_embeddings and the embedding cache)
EMBEDDING = "embedding"
TEXT_HASH = "text_hash"
