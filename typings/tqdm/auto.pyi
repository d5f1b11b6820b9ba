from . import tqdm as tqdm
