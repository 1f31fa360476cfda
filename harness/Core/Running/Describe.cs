using System.Text;
using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Running;

/// <summary>
/// Human-readable observations and walks for traces and divergence reports. An access observation
/// reads like the expectation that would accept it, so a reviewer can paste it after <c>=&gt;</c>.
/// </summary>
public static class Describe
{
    public static string Observation(Observation o)
    {
        var text = o.Kind switch
        {
            OutcomeKind.Translated => $"ok hpa=0x{o.Hpa.Value:x}{(o.PageSize == 0 ? string.Empty : " size=" + o.PageSize.Text())} mt={o.MemoryType.Text()} perm={Permissions(o.Permissions)}",
            OutcomeKind.EptViolation => $"violation qual=0x{o.Qualification:x} gpa=0x{o.Gpa.Value:x}" + (o.GuestLinearAddressValid ? $" gla=0x{o.GuestLinearAddress:x}" : " (gla invalid)"),
            OutcomeKind.EptMisconfiguration => $"misconfig gpa=0x{o.Gpa.Value:x}",
            OutcomeKind.GuestPageFault => $"page-fault code=0x{o.ErrorCode:x}",
            OutcomeKind.Entry => $"entry a={(o.EntryValue >> 8) & 1} d={(o.EntryValue >> 9) & 1} value=0x{o.EntryValue:x}",
            OutcomeKind.EntryNotReached => "entry not reached",
            OutcomeKind.VmEntry => o.VmEntryOk ? "vmentry ok" : "vmentry fail",
            OutcomeKind.NoVmEntry => "no VM entry (the EPTP or controls fail the VM-entry checks)",
            OutcomeKind.Unsupported => $"unsupported ({o.Reason})",
            _ => o.Kind.ToString(),
        };
        if (o.Writes.Count > 0)
        {
            text += " writes:" + string.Concat(o.Writes.Select(w => $" [0x{w.Address.Value:x}]=0x{w.Value:x}"));
        }

        return text;
    }

    public static string Permissions(EptPermissions p) => CaseSyntax.Permissions(p);

    /// <summary>One line per entry read, decoded bit by bit.</summary>
    public static IEnumerable<string> Walk(IReadOnlyList<WalkEntry> walk)
    {
        foreach (var e in walk)
        {
            yield return e.Structure == WalkStructure.Ept
                ? $"ept   {LevelName(e.Level),-6} @0x{e.Address.Value:x} = 0x{e.Value:x16}  {EptBits(e.Value, e.Level)}  (gpa 0x{e.Translating:x})"
                : $"guest {GuestLevelName(e.Level),-6} @0x{e.Address.Value:x} = 0x{e.Value:x16}  {GuestBits(e.Value, e.Level)}  (gla 0x{e.Translating:x})";
        }
    }

    public static string LevelName(EptLevel level) => level switch
    {
        EptLevel.Pte => "PTE",
        EptLevel.Pde => "PDE",
        EptLevel.Pdpte => "PDPTE",
        EptLevel.Pml4e => "PML4E",
        EptLevel.Pml5e => "PML5E",
        _ => $"L{(int)level}",
    };

    private static string GuestLevelName(EptLevel level) => level switch
    {
        EptLevel.Pte => "PTE",
        EptLevel.Pde => "PDE",
        EptLevel.Pdpte => "PDPTE",
        _ => "PML4E",
    };

    /// <summary>EPT entry fields by the SDM's names; the decoding is for people, not for comparison.</summary>
    public static string EptBits(ulong v, EptLevel level)
    {
        var parts = new List<string>();
        if ((v & 1) != 0)
        {
            parts.Add("R");
        }

        if ((v & 2) != 0)
        {
            parts.Add("W");
        }

        if ((v & 4) != 0)
        {
            parts.Add("X");
        }

        if ((v & (1UL << 10)) != 0)
        {
            parts.Add("XU");
        }

        bool leaf = level == EptLevel.Pte || ((level is EptLevel.Pde or EptLevel.Pdpte) && (v & 0x80) != 0);
        if ((v & 0x80) != 0 && level != EptLevel.Pte)
        {
            parts.Add("LargePage");
        }

        if (leaf)
        {
            parts.Add($"MemoryType={(v >> 3) & 7}");
            if ((v & 0x40) != 0)
            {
                parts.Add("IgnorePat");
            }
        }
        else if ((v & 0x78) != 0)
        {
            parts.Add($"reserved[6:3]=0x{(v >> 3) & 0xf:x}");
        }

        if ((v & 0x100) != 0)
        {
            parts.Add("Accessed");
        }

        if (leaf && (v & 0x200) != 0)
        {
            parts.Add("Dirty");
        }

        if ((v & (1UL << 63)) != 0)
        {
            parts.Add("SuppressVe");
        }

        parts.Add($"addr=0x{v & 0x000F_FFFF_FFFF_F000UL:x}");
        return string.Join(' ', parts);
    }

    private static string GuestBits(ulong v, EptLevel level)
    {
        var parts = new List<string>();
        string[] names = ["P", "RW", "US", "PWT", "PCD", "A", "D", "PS", "G"];
        for (int bit = 0; bit < names.Length; bit++)
        {
            if ((v & (1UL << bit)) != 0)
            {
                parts.Add(bit == 7 && level == EptLevel.Pte ? "PAT" : names[bit]);
            }
        }

        if ((v & (1UL << 63)) != 0)
        {
            parts.Add("XD");
        }

        parts.Add($"addr=0x{v & 0x000F_FFFF_FFFF_F000UL:x}");
        return string.Join(' ', parts);
    }
}
