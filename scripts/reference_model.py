"""The reference notebook's model, with its parameter names, shared by the
PyTorch scripts in this folder (pytorch_logits.py, pytorch_bench_train.py,
make_pytorch_fixture.py)."""
import torch


class LSTMModel(torch.nn.Module):
    """Embedding -> LSTM (batch_first) -> Dropout -> Linear, as in the notebook."""

    def __init__(self, vocab_size, embedding_dim, hidden_size, num_layers, dropout):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab_size, embedding_dim)
        self.lstm = torch.nn.LSTM(embedding_dim, hidden_size, num_layers, batch_first=True,
                                  dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = torch.nn.Dropout(dropout)
        self.fc = torch.nn.Linear(hidden_size, vocab_size)

    def forward(self, ids, state=None):
        """Logits at every position, and the final (h, c) of every layer."""
        out, state = self.lstm(self.embedding(ids), state)
        return self.fc(self.dropout(out)), state
