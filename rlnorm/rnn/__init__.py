"""Weight-normalized and layer-normalized LSTMs, drop-in replacements for ``nn.LSTM`` / ``nn.LSTMCell``.

Both take the ``nn.LSTM`` constructor (``input_size, hidden_size, num_layers, bias, batch_first, dropout``) and
call signature ``forward(x, (h0, c0)) -> (y, (h_n, c_n))`` with states ``(num_layers, B, H)``; unbatched input
``(T, F)`` with states ``(num_layers, H)`` works too. See :mod:`rlnorm.rnn.wn_lstm` and :mod:`rlnorm.rnn.ln_lstm`.
"""

from rlnorm.rnn.base import State
from rlnorm.rnn.ln_lstm import LNLSTM, LNLSTMCell
from rlnorm.rnn.wn_lstm import WNLSTM, WNLSTMCell

__all__ = ["LNLSTM", "WNLSTM", "LNLSTMCell", "State", "WNLSTMCell"]
