namespace EptFuzz.Targets.Vmx.Image;

/// <summary>
/// Commands the kernel executes in order. Each command is four little-endian qwords:
/// [op | flags &lt;&lt; 8, a, b, c]. Addresses are the VM's (already relocated).
/// </summary>
public enum ScriptOp : byte
{
    /// <summary>Stop: print the end marker and exit.</summary>
    End = 0,
    /// <summary>qword [a] = b.</summary>
    Write = 1,
    /// <summary>EPT pointer = a (takes effect at the next VM entry; also the INVEPT descriptor's EPTP).</summary>
    SetEptp = 2,
    /// <summary>INVEPT all-context (type 2), so no translation cached before survives.</summary>
    Invept = 3,
    /// <summary>Run the guest: step a, guest RIP b, guest RAX c; flags bit 0: CPL 3. Prints a P or F line.</summary>
    Probe = 4,
    /// <summary>Print "E step value" for qword [b] with step a.</summary>
    Dump = 5,
    /// <summary>Fill c pages from VM page a with tags of case address b (see <see cref="Tag"/>); flags: the tag's size code.</summary>
    Fill = 6,
    /// <summary>Guest CR3 = a, guest CR4 = b, guest EFER = c.</summary>
    GuestPaging = 7,
    /// <summary>Zero c pages from VM page a (RAM above 1 MiB may hold firmware leftovers).</summary>
    Zero = 9,
    /// <summary>
    /// For c[31:0] consecutive VM pages from a[63:12]: save the 8 bytes at page offset a[11:0] to
    /// qword b + 8 * i, then write "mov ebx, id; vmcall" there, id = c[63:32] + i, so a fetch proves
    /// which page it reached.
    /// </summary>
    Plant = 10,
    /// <summary>Undo <see cref="Plant"/> with the same operands: restore the saved bytes.</summary>
    Unplant = 11,
}

/// <summary>The tag stored in every qword of a relocated data page: it proves where a read landed.</summary>
public static class Tag
{
    /// <summary>Bits 63:56 of every tag.</summary>
    public const ulong Marker = 0xE9UL << 56;
    public const ulong AddressMask = (1UL << 52) - 1;

    /// <summary>Tag of the qword at case host-physical <paramref name="caseAddress"/> reached through a leaf of <paramref name="sizeCode"/> (1 = 4K, 2 = 2M, 3 = 1G).</summary>
    public static ulong Of(ulong caseAddress, int sizeCode) => Marker | ((ulong)sizeCode << 52) | (caseAddress & AddressMask);

    public static bool TryDecode(ulong value, out ulong caseAddress, out int sizeCode)
    {
        caseAddress = value & AddressMask;
        sizeCode = (int)((value >> 52) & 0xF);
        return (value & 0xFF00_0000_0000_0000UL) == Marker && sizeCode is 1 or 2 or 3;
    }
}
