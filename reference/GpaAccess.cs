namespace EptFuzz.Reference;

/// <summary>Why the processor accesses a guest-physical address.</summary>
internal enum GpaPurpose : byte
{
    /// <summary>The final translation of the linear address (or the address itself with CR0.PG = 0).</summary>
    Final,
    /// <summary>Reading a guest paging-structure entry during the guest's walk.</summary>
    GuestEntryRead,
    /// <summary>Writing a guest paging-structure entry to set its A or D flag.</summary>
    GuestEntryUpdate,
}

/// <summary>
/// One guest-physical access as EPT sees it: the permission it needs, and what an EPT violation
/// on it reports. See: "EPT Violations" (§28.2.3.2) and Table 27-7, EPT-ACCESS-1.
/// </summary>
/// <param name="Gpa">The guest-physical address translated.</param>
/// <param name="Type">The access as EPT checks it (a guest-entry read under EPT A/D is a write).</param>
/// <param name="Purpose">Why the access happens.</param>
/// <param name="UserModeAddress">MBEC: the linear address is user-mode (a fetch then needs XU, not XS).</param>
/// <param name="Qualification">The exit-qualification bits that do not depend on the EPT walk: 0-2 and 7-11.</param>
/// <param name="Gla">The linear address being translated (valid when qualification bit 7 is 1).</param>
internal readonly record struct GpaAccess(Gpa Gpa, AccessType Type, GpaPurpose Purpose, bool UserModeAddress, ulong Qualification, Gla Gla)
{
    /// <summary>
    /// The final access. See: "Exit Qualification for EPT Violations" (Table 27-7), EPT-EXITQ-1:
    /// bits 0-2 name the access; bits 7 and 8 are 1 (the GLA is valid and this is the final
    /// translation); with advanced information (CAP[22], EPT-EXIT-2) bits 9-11 describe the
    /// linear address: user-mode, read/write page, execute-disable page.
    /// </summary>
    public static GpaAccess ForFinal(Gpa gpa, AccessType type, Gla gla, bool userModeAddress, bool readWritePage, bool executeDisablePage, bool advancedInformation)
    {
        ulong qualification = KindBits(type) | ExitQualification.GuestLinearAddressValid | ExitQualification.FinalTranslation;
        if (advancedInformation)
        {
            qualification |= (userModeAddress ? ExitQualification.UserModeLinearAddress : 0)
                | (readWritePage ? ExitQualification.ReadWritePage : 0)
                | (executeDisablePage ? ExitQualification.ExecuteDisablePage : 0);
        }

        return new GpaAccess(gpa, type, GpaPurpose.Final, userModeAddress, qualification, gla);
    }

    /// <summary>
    /// A read of a guest paging-structure entry. See: "EPT Violations" (§28.2.3.2), EPT-GWALK-1 and
    /// EPT-VIOL-5: it is a data read, but with EPT A/D on (EPTP[6] = 1) the processor treats it as
    /// a write, and a violation then reports both bit 0 and bit 1 (Table 27-7 note 1). Bit 7 = 1
    /// (the GLA is the address being translated), bit 8 = 0; bit 2 is never set, even for a fetch.
    /// </summary>
    public static GpaAccess ForGuestEntryRead(Gpa gpa, Gla gla, bool accessedDirty) => new(
        gpa,
        accessedDirty ? AccessType.Write : AccessType.Read,
        GpaPurpose.GuestEntryRead,
        false,
        (accessedDirty ? ExitQualification.DataRead | ExitQualification.DataWrite : ExitQualification.DataRead) | ExitQualification.GuestLinearAddressValid,
        gla);

    /// <summary>
    /// The write that sets a guest entry's A or D flag. See: "EPT Violations" (§28.2.3.2),
    /// EPT-GWALK-2: a data write to the entry's GPA; a violation reports bits 0 and 1, bit 7 = 1
    /// and bit 8 = 0 (the processor reads and writes the entry in one locked operation).
    /// </summary>
    public static GpaAccess ForGuestEntryUpdate(Gpa gpa, Gla gla) => new(
        gpa,
        AccessType.Write,
        GpaPurpose.GuestEntryUpdate,
        false,
        ExitQualification.DataRead | ExitQualification.DataWrite | ExitQualification.GuestLinearAddressValid,
        gla);

    private static ulong KindBits(AccessType type) => type switch
    {
        AccessType.Read => ExitQualification.DataRead,
        AccessType.Write => ExitQualification.DataWrite,
        _ => ExitQualification.InstructionFetch,
    };
}

/// <summary>A successful EPT walk: the leaf, the page size it maps, and the permissions ANDed over the walk.</summary>
internal readonly record struct EptTranslation(EptEntry Leaf, PageSize Size, EptPermissions Permissions, Hpa Hpa);
