namespace EptFuzz.Reference;

/// <summary>
/// Host-physical memory as 64-bit words at 8-aligned addresses; memory never written reads as 0.
/// The model only reads it: the A/D writes an evaluation makes come back as a list the caller applies.
/// </summary>
public interface IPhysicalMemory
{
    ulong Read(Hpa address);
}

/// <summary>One 8-byte write to host-physical memory: the entry's address and its full new value.</summary>
public readonly record struct PhysicalWrite(Hpa Address, ulong Value);

/// <summary>A sparse, writable host memory (for tests and adapters).</summary>
public sealed class SparseMemory : IPhysicalMemory
{
    private readonly Dictionary<ulong, ulong> words = [];

    public ulong Read(Hpa address)
    {
        CheckAligned(address);
        return words.GetValueOrDefault(address.Value);
    }

    public void Write(Hpa address, ulong value)
    {
        CheckAligned(address);
        words[address.Value] = value;
    }

    public void Apply(IReadOnlyList<PhysicalWrite> writes)
    {
        for (int i = 0; i < writes.Count; i++)
        {
            Write(writes[i].Address, writes[i].Value);
        }
    }

    private static void CheckAligned(Hpa address)
    {
        if ((address.Value & 7) != 0)
        {
            throw new ArgumentException($"host-memory words are 8-byte aligned: {address}", nameof(address));
        }
    }
}
