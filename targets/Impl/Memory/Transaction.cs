using EptFuzz.Contract;

namespace EptFuzz.Impl.Memory;

/// <summary>
/// Makes every hypervisor operation all-or-nothing: memory writes and table-page bookkeeping are
/// applied at once (later steps of the same operation read them) and recorded with their old state,
/// so that a late failure (Duplicated in the middle of an identity map, a pool that runs dry) can
/// restore everything and journal nothing. On commit the writes become the operation's effects.
/// </summary>
public sealed class Transaction
{
    private readonly SparseHostMemory memory;
    private readonly ChunkedList<(ulong Address, ulong Old)> undo = new();
    private readonly List<(Delegate Undo, ulong Argument)> undoActions = [];
    private readonly List<(int UndoIndex, int ActionIndex)> actionOrder = [];
    private readonly ChunkedList<HypervisorEffect> pending = new();

    public Transaction(SparseHostMemory memory)
    {
        this.memory = memory;
    }

    /// <summary>True once the operation overwrote an entry that was present: the caller then owes an INVEPT.</summary>
    public bool TouchedLiveEntry { get; private set; }

    public ulong Read(ulong address) => memory.Read(new Hpa(address));

    /// <summary>
    /// Zeroes a 4 KiB page, writing (journaled, undoable) only the words that are not zero yet. A
    /// clean page, the common case for a fresh table, costs one scan and no write.
    /// </summary>
    public void ClearPage(ulong page)
    {
        if (memory.IsZeroPage(page))
        {
            return;
        }

        for (ulong offset = 0; offset < 4096; offset += 8)
        {
            if (Read(page + offset) != 0)
            {
                Write(page + offset, 0);
            }
        }
    }

    public bool IsZeroRange(ulong pageAddress, ulong bytes) => memory.IsZeroRange(pageAddress, bytes);

    public void Write(ulong address, ulong value)
    {
        ulong old = memory.Read(new Hpa(address));
        if (old != 0)
        {
            TouchedLiveEntry = true;
        }

        undo.Add((address, old));
        memory.Write(new Hpa(address), value);
        pending.Add(HypervisorEffect.Of(new MemoryWrite(new Hpa(address), value)));
    }

    /// <summary>
    /// Writes a whole page that holds only zeros (a table just taken from the pool): one undo
    /// record and one journaled page instead of 512 of each. A page that is not all zero is
    /// written word by word.
    /// </summary>
    /// <param name="words">512 words, rented from <see cref="PageRecycler"/>.</param>
    /// <returns>
    /// True when the array became a page effect: the journal owns it, and the hypervisor gives it
    /// back to the recycler once the effect has been drained and used (or the transaction rolls
    /// back). False when the page was written word by word: the array is still the caller's.
    /// </returns>
    public bool WriteZeroPage(ulong page, ulong[] words)
    {
        if (!memory.IsZeroPage(page))
        {
            for (int i = 0; i < words.Length; i++)
            {
                Write(page + ((ulong)i << 3), words[i]);
            }

            return false;
        }

        // Bit 0 of an aligned address is free: it marks "this page was all zero" for the rollback.
        undo.Add((page | ZeroPageMark, 0));
        memory.WritePage(page, words);
        pending.Add(HypervisorEffect.OfPage(new Hpa(page), words));
        return true;
    }

    private const ulong ZeroPageMark = 1;
    private static readonly ulong[] ZeroWords = new ulong[HypervisorEffect.WordsPerPage];

    /// <summary>Registers how to undo a bookkeeping change made after the writes recorded so far.</summary>
    public void OnRollback(Action undo)
    {
        actionOrder.Add((this.undo.Count, undoActions.Count));
        undoActions.Add((undo, 0));
    }

    /// <summary>
    /// Like <see cref="OnRollback(Action)"/> for an undo that takes one address: the caller keeps
    /// one delegate and nothing is allocated per change (splits and unmaps make thousands).
    /// </summary>
    public void OnRollback(Action<ulong> undo, ulong argument)
    {
        actionOrder.Add((this.undo.Count, undoActions.Count));
        undoActions.Add((undo, argument));
    }

    public void AddInvept(InveptType type) => pending.Add(HypervisorEffect.Of(type));

    /// <summary>Keeps the changes; moves the journaled effects to <paramref name="journal"/>.</summary>
    public void Commit(List<HypervisorEffect> journal)
    {
        pending.AppendTo(journal);
        Reset();
    }

    /// <summary>Restores memory and bookkeeping in reverse order; journals nothing.</summary>
    public void Rollback()
    {
        int action = actionOrder.Count - 1;
        for (int i = undo.Count - 1; i >= -1; i--)
        {
            // Bookkeeping changes registered after write i are undone before write i is.
            while (action >= 0 && actionOrder[action].UndoIndex > i)
            {
                (Delegate undo, ulong argument) = undoActions[actionOrder[action].ActionIndex];
                if (undo is Action<ulong> withArgument)
                {
                    withArgument(argument);
                }
                else
                {
                    ((Action)undo)();
                }

                action--;
            }

            if (i >= 0 && (undo[i].Address & ZeroPageMark) != 0)
            {
                memory.WritePage(undo[i].Address & ~ZeroPageMark, ZeroWords);
            }
            else if (i >= 0)
            {
                memory.Write(new Hpa(undo[i].Address), undo[i].Old);
            }
        }

        // The words of page effects that will never be journaled go back to the recycler.
        for (int i = 0; i < pending.Count; i++)
        {
            if (pending[i].Words is { } words)
            {
                PageRecycler.Return(words);
            }
        }

        Reset();
    }

    private void Reset()
    {
        undo.Clear();
        undoActions.Clear();
        actionOrder.Clear();
        pending.Clear();
        TouchedLiveEntry = false;
    }
}
