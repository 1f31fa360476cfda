using System.Runtime.CompilerServices;

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
    private const int MaxFreeChunks = 64;

    private readonly List<T[]> chunks = [];

    // Full chunks of cleared lists on this thread: a transaction per operation and a hypervisor
    // per case would otherwise allocate (and grow) their lists anew each time.
    [ThreadStatic]
    private static Stack<T[]>? recycled;

    public int Count { get; private set; }

    public T this[int index] => chunks[index >> Shift][index & (ChunkSize - 1)];

    public void Add(T item)
    {
        int chunk = Count >> Shift;
        if (chunk == chunks.Count)
        {
            chunks.Add(recycled is { Count: > 0 } free ? free.Pop() : new T[ChunkSize]);
        }

        chunks[chunk][Count & (ChunkSize - 1)] = item;
        Count++;
    }

    /// <summary>Appends every item, in order, to <paramref name="list"/>.</summary>
    public void AppendTo(List<T> list)
    {
        list.EnsureCapacity(list.Count + Count);
        for (int start = 0; start < Count; start += ChunkSize)
        {
            list.AddRange(chunks[start >> Shift].AsSpan(0, Math.Min(ChunkSize, Count - start)));
        }
    }

    /// <summary>Empties the list; the chunks are kept for the next use.</summary>
    public void Clear()
    {
        if (RuntimeHelpers.IsReferenceOrContainsReferences<T>())
        {
            // Items may hold references (undo actions): do not keep them alive.
            for (int start = 0; start < Count; start += ChunkSize)
            {
                Array.Clear(chunks[start >> Shift], 0, Math.Min(ChunkSize, Count - start));
            }
        }

        Count = 0;
        Stack<T[]> pool = recycled ??= new Stack<T[]>();
        foreach (T[] chunk in chunks)
        {
            if (pool.Count < MaxFreeChunks)
            {
                pool.Push(chunk);
            }
        }

        chunks.Clear();
    }
}
