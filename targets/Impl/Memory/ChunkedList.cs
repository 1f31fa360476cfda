namespace EptFuzz.Impl.Memory;

/// <summary>
/// An append-only list in fixed chunks of 4096 items that keeps its chunks when cleared. A
/// transaction journals one item per entry written, and a split of a 1 GiB page into 4 KiB pages
/// writes 262,144: a <see cref="List{T}"/> copied itself on every doubling and ended on the
/// large-object heap; chunks are never copied and stay small. The first chunk starts small and
/// doubles up to the chunk size, so the many short transactions stay cheap.
/// </summary>
internal sealed class ChunkedList<T>
{
    private const int Shift = 12;
    private const int ChunkSize = 1 << Shift;
    private const int FirstSize = 16;

    private readonly List<T[]> _chunks = [];

    public int Count { get; private set; }

    public T this[int index] => _chunks[index >> Shift][index & (ChunkSize - 1)];

    public void Add(T item)
    {
        int chunk = Count >> Shift;
        if (chunk == _chunks.Count)
        {
            _chunks.Add(new T[chunk == 0 ? FirstSize : ChunkSize]);
        }
        else if (chunk == 0 && Count == _chunks[0].Length)
        {
            T[] first = _chunks[0];
            Array.Resize(ref first, Math.Min(first.Length * 2, ChunkSize));
            _chunks[0] = first;
        }

        _chunks[chunk][Count & (ChunkSize - 1)] = item;
        Count++;
    }

    /// <summary>Appends every item, in order, to <paramref name="list"/>.</summary>
    public void AppendTo(List<T> list)
    {
        list.EnsureCapacity(list.Count + Count);
        for (int start = 0; start < Count; start += ChunkSize)
        {
            list.AddRange(_chunks[start >> Shift].AsSpan(0, Math.Min(ChunkSize, Count - start)));
        }
    }

    /// <summary>Empties the list; the chunks are kept for the next use.</summary>
    public void Clear()
    {
        for (int start = 0; start < Count; start += ChunkSize)
        {
            // Items may hold references (undo actions): do not keep them alive.
            Array.Clear(_chunks[start >> Shift], 0, Math.Min(ChunkSize, Count - start));
        }

        Count = 0;
    }
}
