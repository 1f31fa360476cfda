using EptFuzz.Contract;
using EptFuzz.Targets.Vmx.Image;

namespace EptFuzz.Targets.Vmx.Session;

/// <summary>
/// The planner's own walks of the case's memory (EPT, and guest paging for gva probes). They decide
/// where things must be placed and which probes cannot be expressed; they never answer a probe.
/// </summary>
internal sealed partial class CasePlanner
{
    /// <summary>The case page holding the guest's PML4 (CR3 translated through the case's EPT), or null when the EPT does not map it.</summary>
    private ulong? GuestRootPage(Dictionary<ulong, ulong> memory, ulong eptp, bool mbec, GuestPaging paging)
    {
        ulong cr3 = paging.Cr3.Value & ~0xFFFUL;
        if (FinalLeaf(memory, eptp, mbec, cr3) is not var (entry, level))
        {
            return null;
        }

        ulong size = EptEntry.LeafSize(level).Bytes();
        ulong baseAddress = entry & caseAddressMask & ~(size - 1);
        return baseAddress + (cr3 & (size - 1));
    }

    /// <summary>
    /// The guest-physical addresses a 4-level guest walk of <paramref name="gva"/> reads (each entry)
    /// (with the entry's value) and, when it gets that far, the final one; read through our own EPT
    /// walk of the case's memory. Used only to keep probes away from what the oracle cannot express.
    /// </summary>
    private IEnumerable<(ulong Gpa, bool Final, ulong Entry)> GuestWalkGpas(Dictionary<ulong, ulong> memory, ulong eptp, bool mbec, GuestPaging paging, ulong gva)
    {
        ulong table = paging.Cr3.Value & ~0xFFFUL;
        for (int level = 4; level >= 1; level--)
        {
            ulong entryGpa = table + Index(gva, level) * 8;
            if (FinalLeaf(memory, eptp, mbec, entryGpa) is not var (ept, eptLevel))
            {
                yield return (entryGpa, false, 0);
                yield break;
            }

            ulong size = EptEntry.LeafSize(eptLevel).Bytes();
            ulong hpa = (ept & caseAddressMask & ~(size - 1)) + (entryGpa & (size - 1));
            ulong entry = memory.GetValueOrDefault(hpa);
            yield return (entryGpa, false, entry);
            if ((entry & 1) == 0)
            {
                yield break;
            }

            ulong address = entry & caseAddressMask;
            if (level == 1 || (level <= 3 && (entry & 0x80) != 0))
            {
                ulong pageSize = 1UL << (12 + 9 * (level - 1));
                yield return ((address & ~(pageSize - 1)) | (gva & (pageSize - 1)), true, 0);
                yield break;
            }

            table = address;
        }
    }


    /// <summary>
    /// Does the guest walk of <paramref name="gva"/> meet, before any EPT misconfiguration, a guest
    /// table entry whose page the EPT does not map writable (with EPT A/D on, reading a guest
    /// paging-structure entry is a write, so that access violates)?
    /// </summary>
    private bool GuestTableAccessViolates(Dictionary<ulong, ulong> memory, ulong eptp, bool mbec, GuestPaging paging, ulong gva)
    {
        foreach (var g in GuestWalkGpas(memory, eptp, mbec, paging, gva))
        {
            if (g.Final)
            {
                return false;
            }

            if (FinalLeaf(memory, eptp, mbec, g.Gpa) is not var (leaf, _))
            {
                return true;
            }

            if ((leaf & 0b11) == 0b10)
            {
                // Write without read: a misconfiguration, not a violation.
                return false;
            }

            if ((leaf & 0b10) == 0)
            {
                return true;
            }
        }

        return false;
    }

    private static ulong Index(ulong gpa, int level) => (gpa >> (12 + 9 * (level - 1))) & 0x1FF;

    /// <summary>
    /// Our own walk of a GPA to its leaf (no permission or misconfiguration checks). Used only to keep
    /// probes away from what the oracle cannot express, never to answer one.
    /// </summary>
    private (ulong Entry, EptLevel Level)? FinalLeaf(Dictionary<ulong, ulong> memory, ulong eptp, bool mbec, ulong gpa)
    {
        if (((eptp >> 3) & 7) != 3)
        {
            return null;
        }

        ulong table = eptp & caseAddressMask;
        for (var level = EptLevel.Pml4e; level >= EptLevel.Pte; level--)
        {
            ulong entry = memory.GetValueOrDefault(table + Index(gpa, (int)level) * 8);
            if (!EptEntry.IsPresent(entry, mbec))
            {
                return null;
            }

            if (EptEntry.IsLeaf(entry, level))
            {
                return (entry, level);
            }

            table = entry & caseAddressMask;
        }

        return null;
    }

    /// <summary>EPTP bit 6: the processor sets accessed and dirty flags in EPT entries.</summary>
    private const ulong EptAccessedDirty = 0x40;

    /// <summary>
    /// The case addresses of the EPT entries that the walks of an access probe may read, and so
    /// may set A/D in: the walk of the probe's GPA, or for a gva probe through the case's paging,
    /// the walks of each guest paging-structure entry and of the final GPA (a superset: our walk
    /// does not stop at a misconfiguration or a permission the hardware would refuse).
    /// </summary>
    private HashSet<ulong> ProbeEptEntries(Dictionary<ulong, ulong> memory, ulong eptp, bool mbec, GuestPaging paging, Access access)
    {
        var gpas = access.Linear && paging.Enabled ? GuestWalkGpas(memory, eptp, mbec, paging, access.Address).Select(g => g.Gpa) : [access.Address];
        var entries = new HashSet<ulong>();
        foreach (ulong gpa in gpas)
        {
            entries.UnionWith(EptWalkEntries(memory, eptp, mbec, gpa));
        }

        return entries;
    }

    /// <summary>The case addresses of the entries a 4-level EPT walk of <paramref name="gpa"/> reads, down to its leaf or first not-present entry.</summary>
    private IEnumerable<ulong> EptWalkEntries(Dictionary<ulong, ulong> memory, ulong eptp, bool mbec, ulong gpa)
    {
        // GPA bits 51:48 under a 4-level EPTP (and bits 63:52 of a paging-off linear address): a
        // violation before any entry is read.
        if (((eptp >> 3) & 7) != 3 || gpa >> 48 != 0)
        {
            yield break;
        }

        ulong table = eptp & caseAddressMask;
        for (var level = EptLevel.Pml4e; level >= EptLevel.Pte; level--)
        {
            ulong address = table + Index(gpa, (int)level) * 8;
            yield return address;
            ulong entry = memory.GetValueOrDefault(address);
            if (!EptEntry.IsPresent(entry, mbec) || EptEntry.IsLeaf(entry, level))
            {
                yield break;
            }

            table = entry & caseAddressMask;
        }
    }

    /// <summary>True when every entry of the EPT walk of <paramref name="gpa"/> has the write bit (bit 1).</summary>
    private bool EptWritable(Dictionary<ulong, ulong> memory, ulong eptp, bool mbec, ulong gpa)
    {
        ulong table = eptp & caseAddressMask;
        for (var level = EptLevel.Pml4e; level >= EptLevel.Pte; level--)
        {
            ulong entry = memory.GetValueOrDefault(table + Index(gpa, (int)level) * 8);
            if (!EptEntry.IsPresent(entry, mbec) || (entry & 2) == 0)
            {
                return false;
            }

            if (EptEntry.IsLeaf(entry, level))
            {
                return true;
            }

            table = entry & caseAddressMask;
        }

        return false;
    }
}
