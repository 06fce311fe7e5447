this is a text file, not a NetCDF fit
