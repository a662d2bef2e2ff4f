"""Restricted loading of AVSBench's pickled log-mel tensors (unpickling a dataset file must never run code)."""

import pickle

import pytest
import torch
import torch.storage

from avs_lib.data.errors import DataFormatError
from avs_lib.data.safe_pickle import load_tensor_pickle


class OpenFile:
    """Pickles as a call to ``open(path, "w")``: loading it with plain pickle creates the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class StorageFromBytes:
    """Pickles as ``torch.storage._load_from_bytes(payload)``, the call a tensor pickle makes."""

    def __init__(self, payload: bytes):
        self.payload = payload

    def __reduce__(self):
        return (torch.storage._load_from_bytes, (self.payload,))


def dump(path, obj, protocol=pickle.DEFAULT_PROTOCOL):
    with open(path, "wb") as file:
        pickle.dump(obj, file, protocol=protocol)
    return path


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickled_tensor_round_trips_exactly(tmp_path, protocol):
    tensor = torch.randn(5, 1, 96, 64)
    loaded = load_tensor_pickle(dump(tmp_path / "a.pkl", tensor, protocol))
    assert loaded.dtype == torch.float32 and loaded.shape == (5, 1, 96, 64)
    assert torch.equal(loaded, tensor)


def test_pickled_tensor_view_keeps_offset_and_grad_flag(tmp_path):
    base = torch.arange(10.0, requires_grad=True)
    loaded = load_tensor_pickle(dump(tmp_path / "a.pkl", torch.arange(10.0)[3:7]))
    assert torch.equal(loaded, torch.tensor([3.0, 4.0, 5.0, 6.0]))
    assert load_tensor_pickle(dump(tmp_path / "b.pkl", base)).requires_grad


def test_file_creating_pickle_is_refused_and_nothing_runs(tmp_path):
    proof, victim = tmp_path / "proof.txt", tmp_path / "victim.txt"
    pickle.loads(pickle.dumps(OpenFile(proof)))  # the payload is real: plain pickle runs it
    assert proof.exists()
    path = dump(tmp_path / "evil.pkl", OpenFile(victim))
    with pytest.raises(DataFormatError, match=r"refused global io\.open") as error:
        load_tensor_pickle(path)
    assert error.value.path == path
    assert not victim.exists()


def test_os_system_pickle_is_refused(tmp_path):
    payload = b"cos\nsystem\n(Vtouch never\ntR."  # protocol 0: os.system("touch never")
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(DataFormatError, match=r"refused global os\.system"):
        load_tensor_pickle(path)


def test_code_hidden_in_storage_bytes_is_refused(tmp_path):
    # torch's own _load_from_bytes unpickles these bytes with weights_only=False.
    proof, victim = tmp_path / "proof.txt", tmp_path / "victim.txt"
    with pytest.raises(RuntimeError):
        pickle.loads(pickle.dumps(StorageFromBytes(pickle.dumps(OpenFile(proof), protocol=2))))
    assert proof.exists()  # plain pickle ran the hidden payload before failing
    path = dump(tmp_path / "evil.pkl", StorageFromBytes(pickle.dumps(OpenFile(victim), protocol=2)))
    with pytest.raises(
        DataFormatError, match=r"refused global io\.open \(inside the storage bytes\)"
    ) as error:
        load_tensor_pickle(path)
    assert error.value.path == path
    assert not victim.exists()


def test_pickled_dict_is_not_a_tensor(tmp_path):
    path = dump(tmp_path / "d.pkl", {"audio": [1.0, 2.0]})
    with pytest.raises(DataFormatError, match="holds a dict, expected a torch.Tensor") as error:
        load_tensor_pickle(path)
    assert error.value.path == path


def test_pickled_list_of_tensors_is_not_a_tensor(tmp_path):
    path = dump(tmp_path / "l.pkl", [torch.zeros(2)])
    with pytest.raises(DataFormatError, match="holds a list, expected a torch.Tensor"):
        load_tensor_pickle(path)


def test_truncated_pickle_is_refused(tmp_path):
    data = pickle.dumps(torch.randn(5, 1, 96, 64))
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="not a complete pickle") as error:
        load_tensor_pickle(path)
    assert error.value.path == path


def test_missing_pickle_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.pkl"):
        load_tensor_pickle(tmp_path / "gone.pkl")
