"""The 23 AVSBench S4 categories, in the official order (the class index is the position)."""

S4_CATEGORIES: tuple[str, ...] = (
    "baby_laughter", "female_singing", "male_speech", "dog_barking", "cat_meowing",
    "lions_roaring", "horse_clip-clop", "coyote_howling", "mynah_bird_singing",
    "playing_acoustic_guitar", "playing_tabla", "playing_violin", "playing_piano",
    "playing_ukulele", "playing_glockenspiel", "helicopter", "race_car", "driving_buses",
    "ambulance_siren", "typing_on_computer_keyboard", "chainsawing_trees", "cap_gun_shooting",
    "lawn_mowing")
NUM_CLASSES = len(S4_CATEGORIES)
CATEGORY_TO_INDEX: dict[str, int] = {name: i for i, name in enumerate(S4_CATEGORIES)}
SPLITS: tuple[str, ...] = ("train", "val", "test")
FRAMES_PER_CLIP = 5

